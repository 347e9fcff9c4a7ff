"""fastgd.torch: drop-ins for torch.optim, against torch.optim itself (foreach=False)."""
import copy
import inspect
import io
import pickle
import subprocess
import sys

import numpy as np
import pytest

from helpers import CASE_IDS, CASES

torch = pytest.importorskip("torch")
ft = pytest.importorskip("fastgd.torch")

TORCH_DTYPES = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}
#: one step from the same parameters, state and gradients: a few roundings apart, measured
#: in ulps of the tensor's largest element (fastgd's fused kernels use FMAs where torch
#: rounds each op, and where terms cancel, a rounding of the operands is what remains)
STEP_TOL = {np.dtype(np.float32): dict(ulps=16), np.dtype(np.float64): dict(ulps=16)}
#: after a training run, where those differences have gone through forward and backward
RUN_TOL = {np.dtype(np.float32): dict(rtol=1e-4, atol=1e-5),
           np.dtype(np.float64): dict(rtol=1e-10, atol=1e-12)}

TORCH_CASES = [(c, i) for c, i in zip(CASES, CASE_IDS) if hasattr(torch.optim, c[0])]
NAMES = ["SGD", "Adam", "AdamW", "Adagrad", "RMSprop", "Adadelta", "Adamax", "RAdam", "NAdam"]


def _model(dtype, seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(7, 6), torch.nn.Tanh(), torch.nn.Linear(6, 6),
                               torch.nn.LayerNorm(6), torch.nn.Linear(6, 2)
                               ).to(TORCH_DTYPES[np.dtype(dtype)])


def _batch(dtype, t):
    g = torch.Generator().manual_seed(1000 + t)
    dt = TORCH_DTYPES[np.dtype(dtype)]
    return torch.randn(16, 7, generator=g, dtype=dt), torch.randn(16, 2, generator=g, dtype=dt)


def _backward(model, dtype, t):
    x, y = _batch(dtype, t)
    loss = torch.nn.functional.mse_loss(model(x), y)
    loss.backward()
    return loss


def _groups(model, lr):
    params = list(model.parameters())
    return [{"params": params[:3]}, {"params": params[3:], "lr": lr * 0.5}]


def _allclose(a, b, tol, msg):
    if "ulps" in tol:
        scale = np.max(np.abs(b)) if b.size else 0.0
        tol = dict(rtol=0, atol=tol["ulps"] * np.finfo(b.dtype).eps * max(scale, np.finfo(b.dtype).tiny))
    np.testing.assert_allclose(a, b, **tol, err_msg=msg)


def _close(ours, theirs, tol, what):
    for i, (a, b) in enumerate(zip(ours, theirs)):
        assert a.dtype == b.dtype
        _allclose(a.detach().numpy(), b.detach().numpy(), tol, f"{what}: tensor {i}")


def _state_close(sd_ours, sd_theirs, tol, what):
    assert set(sd_ours["state"]) == set(sd_theirs["state"]), what
    for k, theirs in sd_theirs["state"].items():
        ours = sd_ours["state"][k]
        assert set(ours) == set(theirs), f"{what}: state[{k}] keys"
        for key, b in theirs.items():
            a = ours[key]
            # (torch's loader casts a scalar such as NAdam's mu_product to the parameter's
            # dtype, so after a load into torch.optim the scalars' dtypes may differ)
            assert isinstance(a, torch.Tensor) and a.shape == b.shape and \
                (a.dtype == b.dtype or a.ndim == 0), f"{what}: state[{k}][{key!r}] is {a!r}, torch's {b!r}"
            a, b = (a, b) if a.dtype == b.dtype else (a.double(), b.double())
            _allclose(a.numpy(), b.numpy(), tol, f"{what}: state[{k}][{key!r}]")


@pytest.mark.parametrize("case", [c for c, _ in TORCH_CASES], ids=[i for _, i in TORCH_CASES])
def test_each_step_matches_torch(case, dtype):
    """From the same parameters and state (torch's, loaded through load_state_dict), with
    the same gradients, one step of fastgd.torch equals one of torch.optim(foreach=False)
    to a few roundings, parameters and state; the state dicts have the same keys."""
    name, kw = case
    # the centred variance v - E[g]^2 cancels (more so with a short memory, alpha = 0.3):
    # its operands' roundings are what remains of it
    tol = dict(ulps=64) if kw.get("centered") else STEP_TOL[dtype]
    theirs = _model(dtype)
    ours = copy.deepcopy(theirs)
    topt = getattr(torch.optim, name)(_groups(theirs, kw["lr"]), foreach=False, **kw)
    opt = getattr(ft, name)(_groups(ours, kw["lr"]), **kw)
    for t in range(12):
        topt.zero_grad()
        _backward(theirs, dtype, t)
        if t % 5 == 2:
            theirs[2].bias.grad = None  # skipped, as torch skips it
        with torch.no_grad():
            for a, b in zip(ours.parameters(), theirs.parameters()):
                a.copy_(b)
                a.grad = None if b.grad is None else b.grad.clone()
        opt.load_state_dict(copy.deepcopy(topt.state_dict()))
        opt.step()
        topt.step()
        _close(ours.parameters(), theirs.parameters(), tol, f"step {t + 1}")
        _state_close(opt.state_dict(), topt.state_dict(), tol, f"step {t + 1}")
        assert opt.state_dict()["param_groups"] == topt.state_dict()["param_groups"]


@pytest.mark.parametrize("case", [c for c, _ in TORCH_CASES], ids=[i for _, i in TORCH_CASES])
def test_training_run_matches_torch(case, dtype):
    """A training run with a learning-rate schedule and a skipped gradient: fastgd.torch and
    torch.optim(foreach=False) end at the same parameters and state."""
    name, kw = case
    theirs = _model(dtype)
    ours = copy.deepcopy(theirs)
    runs = []
    for model, cls in ((theirs, getattr(torch.optim, name)), (ours, getattr(ft, name))):
        extra = {"foreach": False} if cls.__module__.startswith("torch") else {}
        opt = cls(_groups(model, kw["lr"]), **kw, **extra)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=7, gamma=0.5)
        for t in range(25):
            opt.zero_grad()
            _backward(model, dtype, t)
            if t % 6 == 4:
                model[0].weight.grad = None
            opt.step()
            sched.step()
        runs.append(opt)
    _close(ours.parameters(), theirs.parameters(), RUN_TOL[dtype], "after 25 steps")
    _state_close(runs[1].state_dict(), runs[0].state_dict(), RUN_TOL[dtype], "after 25 steps")
    assert runs[1].param_groups[1]["lr"] == runs[0].param_groups[1]["lr"]


def test_lion_matches_fastgd_optim(dtype):
    """Lion, which torch lacks, takes the same steps as fastgd.optim.Lion (bit for bit)."""
    import fastgd

    model = _model(dtype)
    arrays = [p.detach().numpy().copy() for p in model.parameters()]
    opt = ft.Lion(model.parameters(), lr=0.01, weight_decay=0.1)
    ref = fastgd.optim.Lion(arrays, lr=0.01, weight_decay=0.1)
    for t in range(10):
        opt.zero_grad()
        _backward(model, dtype, t)
        ref.step([p.grad.numpy().copy() for p in model.parameters()])
        opt.step()
    for p, a in zip(model.parameters(), arrays):
        np.testing.assert_array_equal(p.detach().numpy(), a)
    assert set(opt.state[model[0].weight]) == {"step", "exp_avg"}


@pytest.mark.parametrize("name", NAMES)
def test_signature_and_groups_are_torchs(name):
    ours, theirs = getattr(ft, name), getattr(torch.optim, name)
    sig = inspect.signature(ours.__init__)
    assert sig == inspect.signature(theirs.__init__).replace(return_annotation=sig.return_annotation) \
        or [(p.name, p.default, p.kind) for p in sig.parameters.values()] == \
        [(p.name, p.default, p.kind) for p in inspect.signature(theirs.__init__).parameters.values()]
    w = torch.nn.Parameter(torch.ones(3))
    assert isinstance(ours([w]), torch.optim.Optimizer)
    a, b = ours([w]).param_groups[0], theirs([torch.nn.Parameter(torch.ones(3))]).param_groups[0]
    assert {k: v for k, v in a.items() if k != "params"} == \
        {k: v for k, v in b.items() if k != "params"}
    spec = ours.fastgd_class.spec
    for k, v in spec.defaults.items():  # fastgd's defaults are torch's
        assert b[k] == v, (name, k)


@pytest.mark.parametrize("src_cls, dst_cls", [("torch", "fastgd"), ("fastgd", "torch")])
@pytest.mark.parametrize("name, kw", [("Adam", dict(lr=0.01, amsgrad=True)),
                                      ("SGD", dict(lr=0.05, momentum=0.9)),
                                      ("Adagrad", dict(lr=0.1, initial_accumulator_value=0.2)),
                                      ("NAdam", dict(lr=0.01)),
                                      ("RMSprop", dict(lr=0.01, centered=True, momentum=0.5))])
def test_checkpoints_move_between_torch_and_fastgd(src_cls, dst_cls, name, kw, dtype):
    """A checkpoint (torch.save / torch.load) of one class loads into the other, and training
    goes on as it would have in the first: the continued runs agree."""
    classes = {"torch": lambda params: getattr(torch.optim, name)(params, foreach=False, **kw),
               "fastgd": lambda params: getattr(ft, name)(params, **kw)}
    model = _model(dtype)
    opt = classes[src_cls](model.parameters())
    for t in range(6):
        opt.zero_grad()
        _backward(model, dtype, t)
        opt.step()
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buf)
    buf.seek(0)
    ckpt = torch.load(buf, weights_only=True)
    twin = _model(dtype, seed=5)
    twin.load_state_dict(ckpt["model"])
    other = classes[dst_cls](twin.parameters())
    other.load_state_dict(ckpt["opt"])
    for t in range(6, 12):
        for m, o in ((model, opt), (twin, other)):
            o.zero_grad()
            _backward(m, dtype, t)
            o.step()
    tol = RUN_TOL[dtype]
    if name == "NAdam" and dst_cls == "torch" and dtype == np.float64:
        # torch's loader casts the float32 mu_product to the float64 parameters' dtype, and
        # torch.optim.NAdam then carries it in float64, where fastgd (like torch before the
        # load) rounds it to float32 each step: the runs differ by that rounding
        tol = dict(rtol=1e-7, atol=1e-9)
    _close(twin.parameters(), model.parameters(), tol, "continued")
    _state_close(other.state_dict(), opt.state_dict(), tol, "continued")


def test_own_checkpoint_resumes_bit_for_bit(dtype):
    model = _model(dtype)
    opt = ft.NAdam(model.parameters(), lr=0.01)
    for t in range(4):
        opt.zero_grad()
        _backward(model, dtype, t)
        opt.step()
    twin = copy.deepcopy(model)
    other = ft.NAdam(twin.parameters(), lr=0.01)
    other.load_state_dict(copy.deepcopy(opt.state_dict()))
    clone = copy.deepcopy(opt)  # unpickling rebuilds fastgd's side too
    for t in range(4, 9):
        for m, o in ((model, opt), (twin, other)):
            o.zero_grad()
            _backward(m, dtype, t)
            o.step()
    for a, b in zip(twin.parameters(), model.parameters()):
        assert torch.equal(a, b)
    assert float(opt.state[model[0].weight]["step"]) == 9
    p0 = clone.param_groups[0]["params"][0]
    assert float(clone.state[p0]["step"]) == 4 and p0 is not model[0].weight
    p0.grad = torch.ones_like(p0)
    before = p0.detach().clone()
    clone.step()
    assert not torch.equal(before, p0.detach())
    assert pickle.loads(pickle.dumps(clone)).state_dict()["state"].keys() == \
        clone.state_dict()["state"].keys()


def test_state_is_live_and_in_torchs_format():
    w = torch.nn.Parameter(torch.ones(2, 3))
    b = torch.nn.Parameter(torch.zeros(3))
    opt = ft.Adam([w, b], lr=0.1)
    assert len(opt.state) == 0
    w.grad = torch.ones(2, 3)
    opt.step()
    assert b not in opt.state  # no gradient, no state, as in torch
    st = opt.state[w]
    assert st["step"].dtype == torch.float32 and st["step"].shape == () and st["step"] == 1
    w.grad = torch.full((2, 3), 2.0)
    opt.step()
    assert st["step"] == 2  # the entry's tensors are the optimizer's own state
    expected = torch.optim.Adam([torch.nn.Parameter(torch.ones(2, 3))], lr=0.1)
    q = expected.param_groups[0]["params"][0]
    for g in (1.0, 2.0):
        q.grad = torch.full((2, 3), g)
        expected.step()
    torch.testing.assert_close(st["exp_avg_sq"], expected.state[q]["exp_avg_sq"])
    assert w._version > 0  # autograd sees the in-place update
    sgd = ft.SGD([w], lr=0.1)
    sgd.step()
    assert w not in sgd.state  # torch's SGD keeps nothing without momentum
    assert set(ft.Adagrad([w]).state[w]) == {"step", "sum"}  # and Adagrad from the start


def test_closure_hooks_and_zero_grad():
    w = torch.nn.Parameter(torch.tensor([3.0, -1.0]))
    opt = ft.SGD([w], lr=0.25)
    calls = []
    opt.register_step_pre_hook(lambda o, a, k: calls.append("pre"))
    opt.register_step_post_hook(lambda o, a, k: calls.append("post"))

    def closure():
        opt.zero_grad()
        loss = (w ** 2).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert float(loss.detach()) == 10.0 and calls == ["pre", "post"]
    torch.testing.assert_close(w.detach(), torch.tensor([1.5, -0.5]))
    opt.zero_grad()
    assert w.grad is None


@pytest.mark.parametrize("make", [
    lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.5, total_steps=12),  # cycles betas
    lambda o: torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=4),
    lambda o: torch.optim.lr_scheduler.ReduceLROnPlateau(o, patience=1, factor=0.5),
])
def test_schedulers_drive_it(make):
    runs = []
    for cls in (ft.Adam, lambda params, **kw: torch.optim.Adam(params, foreach=False, **kw)):
        w = torch.nn.Parameter(torch.linspace(-1, 1, 5, dtype=torch.float64))
        opt = cls([w], lr=0.1)
        sched = make(opt)
        lrs = []
        for _ in range(12):
            opt.zero_grad()
            loss = ((w - 0.3) ** 2).sum()
            loss.backward()
            opt.step()
            lrs.append((opt.param_groups[0]["lr"], opt.param_groups[0]["betas"]))
            if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
                sched.step(1.0)  # a plateau: the rate halves
            else:
                sched.step()
        runs.append((w.detach().clone(), lrs))
    assert len(set(runs[0][1])) > 2 and runs[0][1] == runs[1][1]
    torch.testing.assert_close(runs[0][0], runs[1][0], rtol=1e-12, atol=1e-14)


def test_a_tensor_learning_rate():
    w = torch.nn.Parameter(torch.ones(4))
    opt = ft.Adam([w], lr=0.1)
    # a tensor learning rate, as torch allows
    opt.param_groups[0]["lr"] = torch.tensor(0.01)
    w.grad = torch.ones(4)
    opt.step()
    torch.testing.assert_close(w.detach(), torch.full((4,), 0.99))
    opt.param_groups[0]["lr"] = torch.ones(2)
    with pytest.raises(ValueError, match="one number"):
        opt.step()


def test_add_param_group_and_decoupled_weight_decay():
    a, b = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(3))
    opt = ft.Adam([a], lr=0.1)
    opt.add_param_group({"params": [b], "weight_decay": 0.5, "decoupled_weight_decay": True})
    ref = torch.optim.Adam([torch.nn.Parameter(torch.ones(3))], lr=0.1, foreach=False)
    ref.add_param_group({"params": [torch.nn.Parameter(torch.ones(3))], "weight_decay": 0.5,
                         "decoupled_weight_decay": True})
    for g in (torch.zeros(3), torch.ones(3)):
        for p in (a, b, *ref.param_groups[0]["params"], *ref.param_groups[1]["params"]):
            p.grad = g.clone()
        opt.step()
        ref.step()
    torch.testing.assert_close(b.detach(), ref.param_groups[1]["params"][0].detach())
    torch.testing.assert_close(a.detach(), ref.param_groups[0]["params"][0].detach())
    # switching the flag mid-run keeps the state
    opt.param_groups[1]["decoupled_weight_decay"] = False
    b.grad = torch.ones(3)
    opt.step()
    assert float(opt.state[b]["step"]) == 3


@pytest.mark.parametrize("make, exc, match", [
    (lambda: torch.nn.Parameter(torch.ones(3, dtype=torch.bfloat16)), TypeError, "bfloat16"),
    (lambda: torch.nn.Parameter(torch.ones(3, dtype=torch.float16)), TypeError, "float16"),
    (lambda: torch.nn.Parameter(torch.ones(3, dtype=torch.complex64)), TypeError, "complex64"),
    (lambda: torch.nn.Parameter(torch.ones(3, device="meta")), TypeError, "meta"),
    (lambda: torch.nn.Parameter(torch.ones(1, 2, 3, 4).to(memory_format=torch.channels_last)),
     ValueError, "channels_last"),
])
def test_unsupported_parameters_are_refused(make, exc, match):
    with pytest.raises(exc, match=match):
        ft.Adam([make()])


def test_bad_arguments():
    w = torch.nn.Parameter(torch.ones(3))
    with pytest.raises(ValueError, match="capturable=True"):
        ft.Adam([w], capturable=True)
    with pytest.raises(ValueError, match="differentiable=True"):
        ft.SGD([w], differentiable=True)
    with pytest.raises(ValueError, match=r"param_groups\[0\]\['lr'\] must be >= 0"):
        ft.Adam([w], lr=-1.0)
    with pytest.raises(ValueError, match=r"betas'\]\[1\]"):
        ft.Adam([w], betas=(0.9, 1.5))
    with pytest.raises(TypeError):
        ft.Adam([w], learning_rate=0.1)
    with pytest.raises(TypeError, match="iterable of Tensors"):
        ft.Adam(w)
    view = torch.ones(6)
    x, y = torch.nn.Parameter(view[:4]), torch.nn.Parameter(view[2:])
    with pytest.raises(ValueError, match="share memory"):
        ft.Adam([x, y])
    opt = ft.Adam([w], lr=0.1)
    with pytest.raises(ValueError, match="share memory"):
        opt.add_param_group({"params": [torch.nn.Parameter(w.detach()[:2])]})
    assert len(opt.param_groups) == 1  # the refused group is not kept
    opt.param_groups[0]["lr"] = -0.5
    w.grad = torch.ones(3)
    before = w.detach().clone()
    with pytest.raises(ValueError, match=r"param_groups\[0\]\['lr'\]"):
        opt.step()
    assert torch.equal(before, w.detach()) and w not in opt.state


def test_bad_gradients_leave_everything_untouched(dtype):
    dt = TORCH_DTYPES[dtype]
    a, b = torch.nn.Parameter(torch.ones(2, 3, dtype=dt)), torch.nn.Parameter(torch.ones(4, dtype=dt))
    c = torch.nn.Parameter(torch.ones(5, dtype=dt))
    opt = ft.Adam([{"params": [c]}, {"params": [b, a], "lr": 0.5}], lr=0.1)
    c.grad = torch.ones(5, dtype=dt)
    a.grad = torch.ones(2, 3, dtype=dt)
    b.grad = torch.ones(4, dtype=dt).to_sparse()
    with pytest.raises(TypeError, match=r"param_groups\[1\]\['params'\]\[0\].grad.*layout"):
        opt.step()
    b.grad = a.detach().view(-1)[:4]  # the memory of another parameter: refused
    with pytest.raises(ValueError, match=r"param_groups\[1\]\['params'\]\[0\].grad shares memory"):
        opt.step()
    assert torch.all(a.detach() == 1) and torch.all(b.detach() == 1) and torch.all(c.detach() == 1)
    assert len(opt.state) == 0
    # a gradient with other strides is used through a copy in the parameter's layout
    b.grad = None
    a.grad = torch.ones(3, 2, dtype=dt).t()
    opt.step()
    assert torch.all(a.detach() < 1) and float(opt.state[a]["step"]) == 1


def test_moved_parameters_are_followed():
    """``p.data = ...`` (as some code does after building the optimizer) moves a parameter
    to other memory: the optimizer follows it, keeping its state."""
    w = torch.nn.Parameter(torch.ones(3))
    opt = ft.SGD([w], lr=0.5, momentum=0.9)
    w.grad = torch.ones(3)
    opt.step()
    w.data = torch.full((3,), 2.0)
    w.grad = torch.ones(3)
    opt.step()
    torch.testing.assert_close(w.detach(), torch.full((3,), 2.0 - 0.5 * 1.9))
    w.data = torch.ones(4)
    w.grad = torch.ones(4)
    with pytest.raises(ValueError, match="changed from float32"):
        opt.step()


def test_load_state_dict_errors_leave_the_optimizer_as_it_was():
    w = torch.nn.Parameter(torch.ones(3))
    opt = ft.Adam([w], lr=0.1)
    w.grad = torch.ones(3)
    opt.step()
    good = copy.deepcopy(opt.state_dict())
    for mutate, exc, match in [
        (lambda sd: sd["state"][0].__setitem__("exp_avg", torch.ones(4)), ValueError, "shape"),
        (lambda sd: sd["state"][0].__setitem__("bogus", torch.ones(3)), ValueError, "bogus"),
        (lambda sd: sd["state"][0].pop("step"), ValueError, "step"),
        (lambda sd: sd["state"][0].__setitem__("step", torch.tensor(-2.0)), ValueError, "step"),
        (lambda sd: sd["param_groups"][0].__setitem__("lr", -1.0), ValueError, "lr"),
    ]:
        bad = copy.deepcopy(good)
        mutate(bad)
        before = copy.deepcopy(opt.state_dict())
        with pytest.raises(exc, match=match):
            opt.load_state_dict(bad)
        after = opt.state_dict()
        assert after["param_groups"] == before["param_groups"]
        for k in before["state"][0]:
            assert torch.equal(after["state"][0][k], before["state"][0][k])
    # and the optimizer still steps its own buffers
    opt.step()
    assert float(opt.state[w]["step"]) == 2


def test_float64_and_float32_parameters_in_one_group():
    a = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    b = torch.nn.Parameter(torch.ones(3, dtype=torch.float32))
    opt = ft.RMSprop([a, b], lr=0.01)
    ref = torch.optim.RMSprop([torch.nn.Parameter(torch.ones(3, dtype=torch.float64)),
                               torch.nn.Parameter(torch.ones(3))], lr=0.01, foreach=False)
    for p, q in zip((a, b), ref.param_groups[0]["params"]):
        p.grad = torch.linspace(-1, 1, 3, dtype=p.dtype)
        q.grad = p.grad.clone()
    opt.step()
    ref.step()
    for p, q in zip((a, b), ref.param_groups[0]["params"]):
        assert p.dtype == q.dtype
        torch.testing.assert_close(p.detach(), q.detach())


def test_importing_fastgd_does_not_import_torch():
    code = "import sys, fastgd, fastgd.optim, fastgd.functional; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_docstring_examples():
    import doctest

    import fastgd.torch

    for obj in [fastgd.torch, *(getattr(fastgd.torch, n) for n in fastgd.torch.__all__)]:
        for test in doctest.DocTestFinder().find(obj, obj.__name__, globs={}):
            if test.examples:
                result = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS).run(test)
                assert result.failed == 0, test.name


def test_a_user_program_type_checks(tmp_path):
    """The constructors, made from torch's signatures at import, are in the package's stub:
    a type checker accepts torch's arguments and finds a wrong one."""
    api = pytest.importorskip("mypy.api")
    program = tmp_path / "user.py"
    program.write_text(
        "import torch\n"
        "import fastgd.torch\n"
        "model = torch.nn.Linear(3, 1)\n"
        "opt = fastgd.torch.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.99), fused=True)\n"
        "sgd = fastgd.torch.SGD(model.parameters(), 0.1, momentum=0.9, nesterov=True)\n"
        "opt.step()\n"
        "torch.optim.lr_scheduler.StepLR(opt, step_size=3)\n"
        "fastgd.torch.Adam(model.parameters(), learning_rate=0.1)\n")
    out, err, status = api.run([str(program), "--no-incremental", "--cache-dir", "/dev/null",
                                "--ignore-missing-imports", "--follow-imports=silent"])
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert len(errors) == 1, out + err
    assert '"learning_rate"' in errors[0] and "user.py:8" in errors[0]
