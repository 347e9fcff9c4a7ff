"""Trajectories against torch.optim on the same gradients (skipped without torch)."""
import numpy as np
import pytest

from helpers import CASE_IDS, CASES, copies, make, random_array

torch = pytest.importorskip("torch")

STEPS = 50
TORCH_TOL = {np.dtype(np.float32): dict(rtol=1e-4, atol=1e-6),
             np.dtype(np.float64): dict(rtol=1e-10, atol=1e-13)}
SHAPES = [(), (1,), (0,), (17,), (6, 5), (3, 2, 4)]


def _schedule(rng, dtype):
    init = [random_array(rng, s, dtype) for s in SHAPES]
    grads = []
    for t in range(STEPS):
        step = [random_array(rng, s, dtype, scale=rng.uniform(0.2, 2.0)) for s in SHAPES]
        if t % 7 == 3:
            step[3] = None  # torch skips a parameter whose .grad is None
        grads.append(step)
    return init, grads


def _groups(params, kw, wrap=lambda x: x):
    return [{"params": [wrap(p) for p in params[:3]]},
            {"params": [wrap(p) for p in params[3:]], "lr": kw["lr"] * 0.5}]


#: the cases of the optimizers torch.optim has (Lion is tested against its formula instead)
TORCH_CASES = [(c, i) for c, i in zip(CASES, CASE_IDS) if hasattr(torch.optim, c[0])]


@pytest.mark.parametrize("case", [c for c, _ in TORCH_CASES], ids=[i for _, i in TORCH_CASES])
def test_trajectory_matches_torch(case, dtype, backend, rng):
    name, kw = case
    tol = TORCH_TOL[dtype]
    init, grads = _schedule(rng, dtype)

    ours = copies(init)
    opt = make(name, _groups(ours, kw), backend, **kw)
    theirs = [torch.from_numpy(p.copy()) for p in init]
    topt = getattr(torch.optim, name)(_groups(theirs, kw), foreach=False, **kw)

    for t, g in enumerate(grads):
        if t == STEPS // 2:  # a schedule change half-way, in both
            opt.param_groups[1]["lr"] = kw["lr"] * 2
            topt.param_groups[1]["lr"] = kw["lr"] * 2
        opt.step(g)
        for p, gi in zip(theirs, g):
            p.grad = None if gi is None else torch.from_numpy(gi.copy())
        topt.step()
        if t in (0, 1, 9, STEPS - 1):
            for i, (a, b) in enumerate(zip(ours, theirs)):
                assert a.dtype == dtype
                np.testing.assert_allclose(a, b.numpy(), **tol,
                                           err_msg=f"params[{i}] after step {t + 1}")

    for i, p in enumerate(theirs):
        tstate = topt.state[p]
        ostate = opt.state[i]
        if "step" in tstate:  # torch's SGD keeps no step count
            assert int(tstate["step"]) == ostate["step"], i
        for k, v in tstate.items():
            if k == "step" or v is None:
                continue
            np.testing.assert_allclose(ostate[k], v.numpy(), **tol, err_msg=f"state[{i}][{k}]")
    assert opt.state[3]["step"] == STEPS - len([t for t in range(STEPS) if t % 7 == 3])


@pytest.mark.parametrize("name,kw", [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.1)),
    ("RMSprop", dict(lr=0.01, centered=True, momentum=0.9)),
    ("Adam", dict(lr=0.05, amsgrad=True)),
    ("AdamW", dict(lr=0.05, weight_decay=0.1)),
    ("Adamax", dict()),
    ("Adadelta", dict()),
    ("RAdam", dict()),
    ("NAdam", dict()),
])
def test_defaults_match_torch(name, kw):
    """Same default hyper-parameters as torch.optim (the ones not given above)."""
    ours = make(name, [np.zeros(2)], **kw).param_groups[0]
    theirs = getattr(torch.optim, name)([torch.zeros(2)], **kw).param_groups[0]
    for k, v in ours.items():
        if k == "params":
            continue
        assert k in theirs, k
        assert theirs[k] == v or tuple(theirs[k]) == tuple(v), k


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("name,kw", [("SGD", dict(lr=0.1, momentum=0.9)),
                                     ("Adam", dict(lr=0.1, amsgrad=True)),
                                     ("RMSprop", dict(lr=0.1, centered=True)),
                                     ("Adamax", dict(lr=0.1)),
                                     ("Adadelta", dict(lr=1.0)),
                                     ("RAdam", dict(lr=0.1, betas=(0.9, 0.9))),
                                     ("NAdam", dict(lr=0.1))])
def test_non_finite_gradients_match_torch(name, kw, backend):
    g1 = np.array([np.nan, np.inf, -np.inf, 1.0, 0.0])
    g2 = np.array([1.0, -np.inf, 1.0, np.nan, 0.0])
    ours = np.linspace(-1, 1, 5)
    theirs = torch.from_numpy(ours.copy())
    opt = make(name, [ours], backend, **kw)
    topt = getattr(torch.optim, name)([theirs], foreach=False, **kw)
    for g in (g1, g2):
        opt.step([g])
        theirs.grad = torch.from_numpy(g.copy())
        topt.step()
        # same NaN and +-inf positions; finite values to rounding (torch's vectorised lerp
        # uses an FMA, its scalar tail does not, so torch itself varies by 1 ulp per lane)
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-14, atol=0)
        assert np.array_equal(np.isnan(ours), np.isnan(theirs.numpy()))


@pytest.mark.parametrize("backend", ["native", "reference"])
def test_linear_copied_from_torch_gives_torch_output(backend):
    """W is the transpose of torch.nn.Linear.weight; the documented conversion reproduces
    torch's output."""
    from fastgd.nn import Linear

    torch.manual_seed(0)
    torch_linear = torch.nn.Linear(5, 3)
    layer = Linear(5, 3, backend=backend)
    assert layer.W.shape == tuple(torch_linear.weight.shape[::-1])
    layer.W[...] = torch_linear.weight.detach().numpy().T
    layer.b[...] = torch_linear.bias.detach().numpy()
    x = random_array(np.random.default_rng(1), (7, 5), np.float32)
    expected = torch_linear(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(layer(x), expected, rtol=1e-5, atol=1e-6)
