"""fastgd.optim.swa_utils against torch.optim.swa_utils: AveragedModel with every built-in
average (both forms) and custom ones over a sequence of parameter updates, SWALR step by
step; the native pass against its numpy twin and across thread counts; the Averager's C
hook inside the training loop; state dicts; bad input."""
import copy
import math

import numpy as np
import pytest

import fastgd
from fastgd import _optim, nn
from fastgd.optim import swa_utils as S

torch = pytest.importorskip("torch")
TS = torch.optim.swa_utils

STEPS = 12
TDTYPE = {np.float32: torch.float32, np.float64: torch.float64}


def _models(dtype, seed=0):
    """A fastgd model and a torch model with the same parameters (torch's weight is W.T)."""
    ours = nn.Sequential(nn.Linear(5, 7, dtype=dtype, seed=seed), nn.Tanh(),
                         nn.Linear(7, 3, dtype=dtype, seed=seed + 1))
    theirs = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3))
    theirs = theirs.to(TDTYPE[dtype])
    _to_torch(ours, theirs)
    return ours, theirs


def _to_torch(ours, theirs):
    with torch.no_grad():
        for p, t in zip(ours.parameters(), theirs.parameters()):
            t.copy_(torch.from_numpy(p.T.copy() if p.ndim == 2 else p.copy()))


def _from_torch(theirs):
    return [t.detach().numpy().T if t.ndim == 2 else t.detach().numpy()
            for t in theirs.parameters()]


def _perturb(ours, theirs, rng):
    """One 'training step': the same new parameters in both models."""
    for p in ours.parameters():
        p += rng.standard_normal(p.shape).astype(p.dtype) * p.dtype.type(0.3)
    _to_torch(ours, theirs)


def _compare(got, want, dtype, exact, scale=None):
    for i, (g, w) in enumerate(zip(got, want)):
        if dtype == np.float64:
            np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14, err_msg=f"parameter {i}")
        elif exact:
            np.testing.assert_array_equal(g, w, err_msg=f"parameter {i}")
        else:
            # torch.lerp is a fused multiply-add on the CPU (AVX2); fastgd rounds the product
            # w (end - start) first, as its numpy twin does: at most one unit in the last
            # place of the operands apart (more of a result that cancels)
            ulp = np.spacing(scale[i])
            assert np.all(np.abs(g - w) <= ulp), (i, np.max(np.abs(g - w) / ulp))


# (our function, torch's function, keyword, bit-identical in float32)
FORMS = [
    (None, None, None, True),
    (S.get_swa_avg_fn(), TS.get_swa_avg_fn(), "avg_fn", True),
    (S.get_swa_multi_avg_fn(), TS.get_swa_multi_avg_fn(), "multi_avg_fn", False),
    (S.get_ema_avg_fn(0.9), TS.get_ema_avg_fn(0.9), "avg_fn", True),
    (S.get_ema_multi_avg_fn(0.9), TS.get_ema_multi_avg_fn(0.9), "multi_avg_fn", False),
    (S.get_ema_multi_avg_fn(0.3), TS.get_ema_multi_avg_fn(0.3), "multi_avg_fn", False),
    (S.get_ema_multi_avg_fn(), TS.get_ema_multi_avg_fn(), "multi_avg_fn", False),
]
FORM_IDS = ["default", "swa", "swa_multi", "ema0.9", "ema_multi0.9", "ema_multi0.3",
            "ema_multi"]


def _averaged(model, fn, key, **kw):
    return S.AveragedModel(model, **({key: fn} if key else {}), **kw)


@pytest.mark.parametrize("backend", ["native", "reference"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ours_fn,theirs_fn,key,exact", FORMS, ids=FORM_IDS)
def test_against_torch(ours_fn, theirs_fn, key, exact, dtype, backend):
    rng = np.random.default_rng(1)
    ours, theirs = _models(dtype)
    avg = _averaged(ours, ours_fn, key, backend=backend)
    tavg = TS.AveragedModel(theirs, **({key: theirs_fn} if key else {}))
    sync = dtype == np.float32 and not exact
    for _ in range(STEPS):
        _perturb(ours, theirs, rng)
        scale = None
        if sync:
            # each update from the same state: torch's fused lerp and fastgd's may differ
            # by one unit in the last place per update, and those differences add up
            _to_torch(avg.module, tavg.module)
            scale = [np.maximum(np.abs(a), np.abs(p))
                     for a, p in zip(avg.module.parameters(), ours.parameters())]
        avg.update_parameters(ours)
        tavg.update_parameters(theirs)
        _compare(avg.module.parameters(), _from_torch(tavg.module), dtype, exact, scale)
        assert avg.n_averaged == int(tavg.n_averaged)
    X = rng.standard_normal((4, 5)).astype(dtype)
    out = tavg(torch.from_numpy(X)).detach().numpy()
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(avg(X), out, rtol=tol, atol=tol)
    np.testing.assert_array_equal(avg.forward(X), avg.module(X))
    np.testing.assert_array_equal(avg.predict(X), avg.module.predict(X))


def _custom_ours(a, p, n):
    return a * a.dtype.type(0.25) + p * a.dtype.type(0.75) + a.dtype.type(n) * a.dtype.type(1e-3)


def _custom_theirs(a, p, n):
    return a * 0.25 + p * 0.75 + n.to(a.dtype) * 1e-3


def _custom_multi_ours(avgs, curs, n):
    for a, p in zip(avgs, curs):
        a += (p - a) / a.dtype.type(n + 2)


def _custom_multi_theirs(avgs, curs, n):
    for a, p in zip(avgs, curs):
        a.add_((p - a) / (n + 2).to(a.dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("key,ours_fn,theirs_fn", [
    ("avg_fn", _custom_ours, _custom_theirs),
    ("multi_avg_fn", _custom_multi_ours, _custom_multi_theirs)])
def test_custom_average_against_torch(key, ours_fn, theirs_fn, dtype):
    rng = np.random.default_rng(2)
    ours, theirs = _models(dtype)
    avg = S.AveragedModel(ours, **{key: ours_fn})
    tavg = TS.AveragedModel(theirs, **{key: theirs_fn})
    for _ in range(6):
        _perturb(ours, theirs, rng)
        avg.update_parameters(ours)
        tavg.update_parameters(theirs)
    _compare(avg.module.parameters(), _from_torch(tavg.module), dtype, exact=True)


def test_a_custom_multi_avg_fn_is_called_once_per_dtype():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.ps = [np.zeros(3, np.float32), np.zeros(2), np.zeros(4, np.float32)]

        def parameters(self):
            return self.ps

    calls = []

    def fn(avgs, curs, n):
        calls.append(([a.dtype for a in avgs], n))
        for a, p in zip(avgs, curs):
            a += p

    model = Two()
    avg = S.AveragedModel(model, multi_avg_fn=fn)
    for p in model.ps:
        p += 1
    avg.update_parameters(model)   # copies
    avg.update_parameters(model)
    assert calls == [([np.float32, np.float32], 1), ([np.float64], 1)]
    for a in avg.parameters():
        np.testing.assert_array_equal(a, 2)


# ----------------------------------------------------------------------------- native pass

KINDS = ["ema", "ema_sum", "swa", "swa_lerp"]
SIZES = [1, 7, 64, 1000, 70001]   # with tails of every length and a threaded total


def _arrays(dtype, seed, sizes=SIZES):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(n).astype(dtype) for n in sizes]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("decay", [0.0, 0.25, 0.5, 0.999, 1.0])
def test_native_is_the_reference_bit_for_bit(kind, decay, dtype):
    avg, cur = _arrays(dtype, 3), _arrays(dtype, 4)
    ref = [a.copy() for a in avg]
    for n in (0, 1, 2, 5, 1000):
        _optim.average_(avg, cur, kind, decay, n)
        for a, p in zip(ref, cur):
            fastgd.reference.swa.average_(a, p, kind, decay, n)
        for a, r in zip(avg, ref):
            np.testing.assert_array_equal(a, r)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fn,key", [(f, k) for f, _, k, _ in FORMS], ids=FORM_IDS)
def test_averaged_model_native_is_reference(fn, key, dtype):
    rng = np.random.default_rng(5)
    model = nn.MLP([40, 33, 9], dtype=dtype, seed=0)
    native = _averaged(model, fn, key)
    ref = _averaged(model, fn, key, backend="reference")
    for _ in range(5):
        for p in model.parameters():
            p += rng.standard_normal(p.shape).astype(dtype)
        native.update_parameters(model)
        ref.update_parameters(model)
        for a, b in zip(native.parameters(), ref.parameters()):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", KINDS)
def test_the_same_bits_for_any_thread_count(threads, kind, dtype):
    results = []
    for n in (1, 2):
        threads(n)
        avg = _arrays(dtype, 7, sizes=[100000, 33, 50000])
        cur = _arrays(dtype, 6, sizes=[100000, 33, 50000])
        av = _optim.Averager(avg, cur, kind, 0.9)
        for _ in range(4):
            av.run()
            for c in cur:
                c *= dtype(1.5)
        results.append(avg)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_averager_copies_first_then_averages_and_counts():
    avg, cur = [np.zeros(3, np.float32), np.zeros(2)], [np.ones(3, np.float32), np.full(2, 4.0)]
    av = _optim.Averager(avg, cur, "swa")
    assert av.n_averaged == 0 and av.kind == "swa" and av.bound_to(avg, cur)
    av.run()
    np.testing.assert_array_equal(avg[0], 1)
    np.testing.assert_array_equal(avg[1], 4)
    cur[0][...] = 4
    cur[1][...] = 1
    av.run()
    assert av.n_averaged == 2
    np.testing.assert_array_equal(avg[0], 2.5)
    np.testing.assert_array_equal(avg[1], 2.5)
    av.n_averaged = 0            # the next run copies again
    av.run()
    np.testing.assert_array_equal(avg[1], 1)
    assert not av.bound_to(avg, [cur[0], cur[1].copy()])


def test_the_averager_hook_in_the_training_loop():
    """train_steps with the Averager's hook after the update is the per-step loop with
    update_parameters after each step, bit for bit."""
    rng = np.random.default_rng(8)
    X = rng.standard_normal((40, 6))
    y = rng.integers(0, 3, 40)
    steps, bs = 8, 5

    def setup():
        model = nn.MLP([6, 10, 3], dtype=np.float64, seed=0)
        opt = fastgd.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        avg = S.AveragedModel(model, multi_avg_fn=S.get_ema_multi_avg_fn(0.8))
        return model, opt, avg, [u.hook() for u in opt.bind(model.gradients())]

    model, opt, avg, hooks = setup()
    averager = _optim.Averager(avg.parameters(), model.parameters(), "ema", 0.8)
    losses = np.empty(steps)
    idx = np.arange(40)
    done = model.program.train_steps(X, y, idx, 0, 40, bs, "cross_entropy", None,
                                     hooks + [averager.hook()], losses)
    assert done == steps and averager.n_averaged == steps

    model2, opt2, avg2, hooks2 = setup()
    one = np.empty(1)
    for k in range(steps):
        model2.program.train_steps(X, y, idx, k * bs, (k + 1) * bs, bs, "cross_entropy", None,
                                   hooks2, one)
        avg2.update_parameters(model2)
    assert avg2.n_averaged == steps
    for a, b in zip(avg.parameters(), avg2.parameters()):
        np.testing.assert_array_equal(a, b)


def test_a_hook_keeps_its_averager_alive():
    import gc
    avg, cur = [np.zeros(2)], [np.ones(2)]
    hook = _optim.Averager(avg, cur, "swa").hook()
    gc.collect()
    model = nn.MLP([2, 2], dtype=np.float64, seed=0)
    losses = np.empty(3)
    model.program.train_steps(np.zeros((3, 2)), np.zeros(3, np.int64), np.arange(3), 0, 3, 1,
                              "cross_entropy", None, [hook], losses)
    np.testing.assert_array_equal(avg[0], 1)


def test_builtin_functions_called_directly():
    a, p = np.zeros(3, np.float32), np.full(3, 2, np.float32)
    out = S.get_ema_avg_fn(0.75)(a, p, 4)
    np.testing.assert_array_equal(out, 0.5)
    np.testing.assert_array_equal(a, 0)          # not touched
    np.testing.assert_array_equal(S.get_swa_avg_fn()(a, p, 3), 0.5)
    avgs = [a.copy()]
    assert S.get_swa_multi_avg_fn()(avgs, [p], 1) is None
    np.testing.assert_array_equal(avgs[0], 1)
    assert repr(S.get_ema_multi_avg_fn(0.5)) == "get_ema_multi_avg_fn(0.5)"


def test_the_averaged_module_is_a_copy():
    model = nn.MLP([3, 4, 2], seed=0)
    avg = S.AveragedModel(model)
    assert avg.module is not model and avg.n_averaged == 0
    for a, p in zip(avg.parameters(), model.parameters()):
        assert a is not p and not np.shares_memory(a, p)
        np.testing.assert_array_equal(a, p)
    X = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(avg(X), model(X))
    model[0].W[...] = 0                          # the copy has its own compiled program
    assert not np.array_equal(avg(X), model(X))
    assert copy.deepcopy(model).program is not model.program


# ----------------------------------------------------------------------------- state

@pytest.mark.parametrize("backend", ["native", "reference"])
def test_state_dict_round_trip(backend):
    rng = np.random.default_rng(9)
    model = nn.MLP([4, 6, 2], dtype=np.float64, seed=0)
    avg = S.AveragedModel(model, multi_avg_fn=S.get_ema_multi_avg_fn(0.7), backend=backend)
    for _ in range(3):
        for p in model.parameters():
            p += rng.standard_normal(p.shape)
        avg.update_parameters(model)
    sd = avg.state_dict()
    assert sd["n_averaged"] == 3 and len(sd["parameters"]) == 4
    other = S.AveragedModel(nn.MLP([4, 6, 2], dtype=np.float64, seed=5),
                            multi_avg_fn=S.get_ema_multi_avg_fn(0.7), backend=backend)
    other.load_state_dict(sd)
    sd["parameters"][0][...] = 99                # a copy: neither model sees it
    assert other.n_averaged == 3
    for _ in range(2):
        for p in model.parameters():
            p += rng.standard_normal(p.shape)
        avg.update_parameters(model)
        other.update_parameters(model)
    for a, b in zip(avg.parameters(), other.parameters()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("change,error,match", [
    (lambda sd: sd.pop("n_averaged"), KeyError, "n_averaged"),
    (lambda sd: sd.update(extra=1), ValueError, "'extra'"),
    (lambda sd: sd.update(n_averaged=-1), ValueError, r"state_dict\['n_averaged'\]"),
    (lambda sd: sd.update(n_averaged=1.0), TypeError, r"state_dict\['n_averaged'\]"),
    (lambda sd: sd.update(parameters=sd["parameters"][:1]), ValueError, "has 1 arrays"),
    (lambda sd: sd["parameters"].__setitem__(2, np.zeros((6, 3))), ValueError,
     r"state_dict\['parameters'\]\[2\] has shape"),
    (lambda sd: sd["parameters"].__setitem__(1, np.zeros(6, np.float32)), TypeError,
     r"state_dict\['parameters'\]\[1\] has dtype"),
    (lambda sd: sd["parameters"].__setitem__(0, "x"), TypeError,
     r"state_dict\['parameters'\]\[0\]"),
])
def test_load_state_dict_names_the_bad_entry(change, error, match):
    model = nn.MLP([4, 6, 2], dtype=np.float64, seed=0)
    avg = S.AveragedModel(model)
    avg.update_parameters(model)
    sd = avg.state_dict()
    before = [a.copy() for a in avg.parameters()]
    change(sd)
    with pytest.raises(error, match=match):
        avg.load_state_dict(sd)
    for a, b in zip(avg.parameters(), before):   # nothing written
        np.testing.assert_array_equal(a, b)
    assert avg.n_averaged == 1


# ----------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("make", [S.get_ema_avg_fn, S.get_ema_multi_avg_fn])
@pytest.mark.parametrize("decay", [-0.1, 1.5, math.nan, "0.9"])
def test_decay_outside_0_1(make, decay):
    with pytest.raises((ValueError, TypeError), match="decay"):
        make(decay)


def test_averaged_model_bad_arguments():
    model = nn.MLP([3, 2], seed=0)
    with pytest.raises(TypeError, match="model must be a fastgd.nn.Module"):
        S.AveragedModel(object())
    with pytest.raises(TypeError, match="model must be a fastgd.nn.Module"):
        S.AveragedModel(model).update_parameters([np.zeros(2)])
    with pytest.raises(ValueError, match="only one of avg_fn and multi_avg_fn"):
        S.AveragedModel(model, avg_fn=S.get_swa_avg_fn(), multi_avg_fn=S.get_swa_multi_avg_fn())
    with pytest.raises(TypeError, match="avg_fn must be callable"):
        S.AveragedModel(model, avg_fn=3)
    with pytest.raises(TypeError, match="multi_avg_fn is get_ema_avg_fn.*pass it as avg_fn"):
        S.AveragedModel(model, multi_avg_fn=S.get_ema_avg_fn())
    with pytest.raises(TypeError, match="avg_fn is get_swa_multi_avg_fn.*as multi_avg_fn"):
        S.AveragedModel(model, avg_fn=S.get_swa_multi_avg_fn())
    with pytest.raises(ValueError, match="backend"):
        S.AveragedModel(model, backend="gpu")
    with pytest.raises(TypeError, match="use_buffers"):
        S.AveragedModel(model, use_buffers=1)


@pytest.mark.parametrize("backend", ["native", "reference"])
def test_update_parameters_refuses_another_model(backend):
    model = nn.MLP([3, 4, 2], seed=0)
    avg = S.AveragedModel(model, backend=backend)
    avg.update_parameters(model)
    before = [a.copy() for a in avg.parameters()]
    with pytest.raises(TypeError, match=r"model.parameters\(\)\[0\] has dtype float64"):
        avg.update_parameters(nn.MLP([3, 4, 2], dtype=np.float64, seed=0))
    with pytest.raises(ValueError, match=r"model.parameters\(\)\[0\] has shape \(3, 5\)"):
        avg.update_parameters(nn.MLP([3, 5, 2], seed=0))
    with pytest.raises(ValueError, match="model has 2 parameter arrays"):
        avg.update_parameters(nn.MLP([3, 2], seed=0))
    for a, b in zip(avg.parameters(), before):
        np.testing.assert_array_equal(a, b)
    assert avg.n_averaged == 1


def test_a_custom_avg_fn_of_the_wrong_shape():
    model = nn.MLP([3, 2], seed=0)
    avg = S.AveragedModel(model, avg_fn=lambda a, p, n: np.zeros(1))
    avg.update_parameters(model)
    with pytest.raises(ValueError, match=r"avg_fn returned shape \(1,\)"):
        avg.update_parameters(model)


@pytest.mark.parametrize("avg,cur,kw,error,match", [
    ([np.zeros(2)], [], {}, ValueError, "current has 0 arrays"),
    ([np.zeros(2)], [np.zeros(2, np.float32)], {}, TypeError, r"current\[0\] has dtype"),
    ([np.zeros(2)], [np.zeros(3)], {}, ValueError, r"current\[0\] has shape"),
    ([np.zeros(2, np.int64)], [np.zeros(2, np.int64)], {}, TypeError, r"averaged\[0\]"),
    (["x"], [np.zeros(2)], {}, TypeError, r"averaged\[0\] must be a numpy.ndarray"),
    ([np.zeros(2)], ["x"], {}, TypeError, r"current\[0\] must be a numpy.ndarray"),
    ([np.zeros(4)[::2]], [np.zeros(2)], {}, ValueError, r"averaged\[0\] is not contiguous"),
    ([np.zeros(2)], [np.zeros(2)], dict(kind="mean"), ValueError, "kind must be one of"),
    ([np.zeros(2)], [np.zeros(2)], dict(decay=2.0), ValueError, "decay must be in"),
    ([np.zeros(2)], [np.zeros(2)], dict(n_averaged=-1), ValueError, "n_averaged"),
])
def test_averager_bad_arrays(avg, cur, kw, error, match):
    with pytest.raises(error, match=match):
        _optim.Averager(avg, cur, **kw)


def test_averager_refuses_shared_memory():
    buf = np.zeros(6)
    with pytest.raises(ValueError, match=r"averaged\[0\] and current\[0\]|current\[0\] and "
                                         r"averaged\[0\]"):
        _optim.Averager([buf[:3]], [buf[2:5]], "swa")
    with pytest.raises(ValueError, match="same array"):
        _optim.average_([buf, buf], [np.zeros(6), np.zeros(6)], "ema")
    ro = np.zeros(2)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        _optim.Averager([ro], [np.zeros(2)])
    _optim.Averager([np.zeros(2)], [ro]).run()   # the model's arrays are only read


# ----------------------------------------------------------------------------- SWALR

def _sched_pair(**kw):
    ours = fastgd.optim.SGD([{"params": [np.zeros(3)]}, {"params": [np.zeros(2)], "lr": 0.05}],
                            lr=0.1, momentum=0.9)
    tp = [torch.zeros(3, requires_grad=True), torch.zeros(2, requires_grad=True)]
    theirs = torch.optim.SGD([{"params": [tp[0]]}, {"params": [tp[1]], "lr": 0.05}], lr=0.1,
                             momentum=0.9)
    return ours, theirs, S.SWALR(ours, **kw), TS.SWALR(theirs, **kw)


@pytest.mark.parametrize("kw", [
    dict(swa_lr=0.01),
    dict(swa_lr=[0.02, 0.2], anneal_epochs=4, anneal_strategy="linear"),
    dict(swa_lr=0.5, anneal_epochs=0),
    dict(swa_lr=0.03, anneal_epochs=1, anneal_strategy="cos"),
    dict(swa_lr=0.0, anneal_epochs=7, anneal_strategy="linear"),
])
def test_swalr_against_torch(kw):
    ours, theirs, s, t = _sched_pair(**kw)
    assert s.get_last_lr() == t.get_last_lr()
    for _ in range(15):
        ours.step([np.zeros(3), np.zeros(2)])
        theirs.step()
        s.step()
        t.step()
        assert s.get_last_lr() == pytest.approx(t.get_last_lr(), rel=1e-15, abs=1e-18)
        assert [g["lr"] for g in ours.param_groups] == s.get_last_lr()
        assert [g["swa_lr"] for g in ours.param_groups] == \
               [g["swa_lr"] for g in theirs.param_groups]


def test_swalr_after_another_schedule_and_its_state_dict():
    ours, theirs, _, _ = _sched_pair(swa_lr=0.01)
    ours2 = fastgd.optim.SGD([np.zeros(2)], lr=1.0)
    theirs2 = torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=1.0)
    cos = fastgd.optim.lr_scheduler.CosineAnnealingLR(ours2, T_max=10)
    tcos = torch.optim.lr_scheduler.CosineAnnealingLR(theirs2, T_max=10)
    for _ in range(4):
        ours2.step([np.zeros(2)])
        theirs2.step()
        cos.step()
        tcos.step()
    s = S.SWALR(ours2, swa_lr=0.05, anneal_epochs=3)
    t = TS.SWALR(theirs2, swa_lr=0.05, anneal_epochs=3)
    for _ in range(2):
        theirs2.step()
        s.step()
        t.step()
    assert s.get_last_lr() == pytest.approx(t.get_last_lr(), rel=1e-15)
    sd = s.state_dict()
    assert "optimizer" not in sd and sd["_anneal_strategy"] == "cos"
    s2 = S.SWALR(ours2, swa_lr=0.05, anneal_epochs=3)
    s2.load_state_dict(sd)
    for _ in range(3):
        s2.step()
        t.step()
        assert s2.get_last_lr() == pytest.approx(t.get_last_lr(), rel=1e-15)


@pytest.mark.parametrize("kw,error,match", [
    (dict(swa_lr=0.1, anneal_strategy="exp"), ValueError, "anneal_strategy"),
    (dict(swa_lr=0.1, anneal_epochs=-1), ValueError, "anneal_epochs"),
    (dict(swa_lr=0.1, anneal_epochs=2.5), TypeError, "anneal_epochs"),
    (dict(swa_lr=[0.1]), ValueError, "swa_lr has 1 values"),
    (dict(swa_lr=-0.1), ValueError, "swa_lr"),
    (dict(swa_lr=[0.1, "x"]), TypeError, r"swa_lr\[1\]"),
])
def test_swalr_bad_arguments(kw, error, match):
    ours, _, _, _ = _sched_pair(swa_lr=0.1)
    for g in ours.param_groups:
        g.pop("swa_lr")
    with pytest.raises(error, match=match):
        S.SWALR(ours, **kw)
    assert all("swa_lr" not in g for g in ours.param_groups)   # nothing written
    with pytest.raises(TypeError, match="optimizer"):
        S.SWALR(object(), swa_lr=0.1)
