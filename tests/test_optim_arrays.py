"""Memory layouts, non-finite gradients and determinism (threads) of the optimizers."""
import numpy as np
import pytest

import fastgd
from helpers import CASE_IDS, CASES, TOL, assert_state_equal, copies, make, random_array


def run(name, kw, init, grads, backend="native"):
    params = copies(init)
    opt = make(name, params, backend, **kw)
    for g in grads:
        opt.step(g)
    return params, opt


# ---------------------------------------------------------------------------- layouts

def _strided_views(g):
    """Gradients equal to ``g`` (2-D) in other memory layouts, none of them C-contiguous."""
    big = np.zeros((g.shape[0] * 2, g.shape[1] * 3), g.dtype)
    big[::2, ::3] = g
    rev = np.ascontiguousarray(g[::-1, ::-1])[::-1, ::-1]
    return {
        "fortran": np.asfortranarray(g),
        "transposed": np.ascontiguousarray(g.T).T,
        "strided": big[::2, ::3],
        "reversed": rev,
        "column-slice": np.concatenate([g, g], axis=1)[:, : g.shape[1]],
    }


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("order", ["C", "F"])
def test_non_contiguous_gradients(case, order, backend, dtype, rng):
    name, kw = case
    init = [random_array(rng, s, dtype, order) for s in [(5, 7), (3, 40)]]
    grads = [[random_array(rng, p.shape, dtype) for p in init] for _ in range(3)]
    expected, opt_e = run(name, kw, init, grads, backend)
    all_views = [[_strided_views(g) for g in step] for step in grads]
    for label in all_views[0][0]:
        views = [[v[label] for v in step] for step in all_views]
        for step, ref in zip(views, grads):
            for v, g in zip(step, ref):
                assert np.array_equal(v, g) and not v.flags.c_contiguous
        got, opt_g = run(name, kw, init, views, backend)
        for a, b in zip(got, expected):
            assert np.array_equal(a, b), label
            assert a.flags.c_contiguous == (order == "C") or a.ndim < 2
        assert_state_equal(opt_g, opt_e)


@pytest.mark.parametrize("name", ["SGD", "Adagrad", "RMSprop", "Adam", "AdamW"])
@pytest.mark.parametrize("order", ["C", "F"])
def test_non_contiguous_gradients_threaded(name, order, threads, rng):
    """Same, for a parameter big enough to be split over two threads."""
    threads(2)
    init = [random_array(rng, (260, 256), np.float32, order), random_array(rng, (9,), np.float64)]
    grads = [[random_array(rng, p.shape, p.dtype) for p in init] for _ in range(2)]
    expected, _ = run(name, {"lr": 0.01}, init, grads)
    for label in ("fortran", "strided", "reversed"):
        views = [[_strided_views(step[0])[label], step[1][::-1].copy()[::-1]]
                 for step in grads]
        assert not any(v.flags.c_contiguous for step in views for v in step)
        got, _ = run(name, {"lr": 0.01}, init, views)
        for a, b in zip(got, expected):
            assert np.array_equal(a, b), label


def test_broadcast_and_read_only_gradients(backend, dtype):
    x = np.ones((3, 4), dtype)
    y = np.ones((3, 4), dtype)
    row = np.arange(4, dtype=dtype)
    g = np.broadcast_to(row, (3, 4))  # zero strides, read-only
    fastgd.optim.Adam([x], lr=0.1, backend=backend).step([g])
    fastgd.optim.Adam([y], lr=0.1, backend=backend).step([np.ascontiguousarray(g)])
    np.testing.assert_array_equal(x, y)
    assert not np.array_equal(x[:, 1], x[:, 0])


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_fortran_parameters_match_c_parameters(case, backend, dtype, rng):
    """A Fortran-ordered parameter is its transpose's C-ordered twin, elementwise."""
    name, kw = case
    c_init = [random_array(rng, (6, 9), dtype), random_array(rng, (4, 3, 2), dtype)]
    grads = [[random_array(rng, p.shape, dtype) for p in c_init] for _ in range(4)]
    f_init = [np.asfortranarray(p.T) for p in c_init]
    f_grads = [[np.asfortranarray(g.T) for g in step] for step in grads]
    c_out, c_opt = run(name, kw, c_init, grads, backend)
    f_out, f_opt = run(name, kw, f_init, f_grads, backend)
    for c, f in zip(c_out, f_out):
        assert f.flags.f_contiguous and not f.flags.c_contiguous
        assert np.array_equal(c, f.T)
    # the state arrays follow the parameter's layout
    for i, entry in f_opt.state.items():
        for k, v in entry.items():
            if isinstance(v, np.ndarray):
                assert np.array_equal(v.T, c_opt.state[i][k]), (i, k)
    # and a C-ordered gradient for a Fortran parameter works too
    f_out2, _ = run(name, kw, f_init, [[np.ascontiguousarray(g) for g in s] for s in f_grads],
                    backend)
    for a, b in zip(f_out, f_out2):
        assert np.array_equal(a, b)


def _unaligned(n, dtype, rng):
    """An array at an odd byte offset (a view into a byte buffer: flags.aligned is False)."""
    a = np.zeros(n * dtype.itemsize + 1, np.uint8)[1:].view(dtype)
    assert not a.flags.aligned
    a[...] = rng.standard_normal(n)
    return a


def test_unaligned_parameters_are_refused(backend, dtype):
    """The kernels never read a misaligned ``float *`` (undefined behaviour): a parameter
    that is not aligned to its elements is refused by name, on both backends."""
    p = _unaligned(1001, dtype, np.random.default_rng(3))
    with pytest.raises(ValueError, match=r"params\[0\] is not aligned"):
        fastgd.optim.Adam([p], lr=0.1, amsgrad=True, backend=backend)
    with pytest.raises(ValueError, match=r"param(\[0\])? is not aligned"):
        fastgd.functional.adam_(p, p.copy(), np.zeros_like(p), np.zeros_like(p), step=1,
                                backend=backend)


def test_unaligned_gradients_are_read_through_an_aligned_copy(backend, dtype):
    rng = np.random.default_rng(3)
    g = _unaligned(1001, dtype, rng)
    p = rng.standard_normal(1001).astype(dtype)
    q = p.copy()
    fastgd.optim.Adam([p], lr=0.1, amsgrad=True, backend=backend).step([g])
    fastgd.optim.Adam([q], lr=0.1, amsgrad=True, backend="reference").step([g.copy()])
    np.testing.assert_allclose(p, q, **TOL[dtype])


# ---------------------------------------------------------------------------- NaN and Inf

@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("size", [5, 2**17 + 5])
def test_nan_gradient_propagates(case, size, backend, dtype):
    name, kw = case
    x = np.ones(size, dtype)
    g = np.full(size, 0.5, dtype)
    g[1] = np.nan
    g[-2] = np.nan
    opt = make(name, [x], backend, **kw)
    opt.step([g])
    assert np.isnan(x[1]) and np.isnan(x[-2])
    mask = np.ones(size, bool)
    mask[[1, -2]] = False
    assert np.all(np.isfinite(x[mask]))
    for k, v in opt.state[0].items():
        if isinstance(v, np.ndarray):
            assert np.isnan(v[1]), k
    # it stays NaN (no masking, no reset) after a clean step
    opt.step([np.full(size, 0.5, dtype)])
    assert np.isnan(x[1])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_nan_enters_amsgrad_maximum(backend, dtype):
    """max(v_max, NaN) is NaN, as torch.maximum (not fmax)."""
    x = np.ones(3, dtype)
    opt = fastgd.optim.Adam([x], lr=0.1, amsgrad=True, backend=backend)
    opt.step([np.ones(3, dtype)])
    opt.step([np.array([np.nan, 1, 1], dtype)])
    assert np.isnan(opt.state[0]["max_exp_avg_sq"][0])
    assert np.isnan(x[0]) and np.all(np.isfinite(x[1:]))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("sign", [1, -1])
def test_inf_gradient_sgd(backend, dtype, sign):
    x = np.zeros(3, dtype)
    fastgd.optim.SGD([x], lr=0.1, backend=backend).step([np.array([sign * np.inf, 1, 0], dtype)])
    assert x[0] == -sign * np.inf
    np.testing.assert_allclose(x[1:], [-0.1, 0.0], rtol=1e-6)
    # with momentum the buffer holds inf; inf - inf gives NaN on a later step
    y = np.zeros(2, dtype)
    opt = fastgd.optim.SGD([y], lr=0.1, momentum=0.9, backend=backend)
    opt.step([np.array([np.inf, 1], dtype)])
    assert np.isinf(y[0])
    opt.step([np.array([-np.inf, 1], dtype)])
    assert np.isnan(y[0]) and np.isfinite(y[1])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_inf_gradient_adam(backend, dtype):
    x = np.zeros(2, dtype)
    opt = fastgd.optim.Adam([x], lr=0.1, backend=backend)
    opt.step([np.array([np.inf, 1], dtype)])
    # m = inf, v = inf: inf / inf is NaN, like PyTorch
    assert np.isnan(x[0]) and np.isfinite(x[1])


# ---------------------------------------------------------------------------- determinism

SIZES = [70001, 3, 65537, 0, 129, 2**17 + 11, 1]


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_thread_count_does_not_change_results(case, threads, rng):
    name, kw = case
    init = [random_array(rng, (n,), np.float32 if i % 2 else np.float64)
            for i, n in enumerate(SIZES)]
    grads = [[random_array(rng, p.shape, p.dtype) for p in init] for _ in range(3)]
    results = {}
    for n in (1, 2, 3):
        threads(n)
        results[n] = run(name, kw, init, grads)
    for n in (2, 3):
        for a, b in zip(results[1][0], results[n][0]):
            assert np.array_equal(a, b, equal_nan=True), n
        assert_state_equal(results[1][1], results[n][1])


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_same_inputs_same_bits(case, threads, rng):
    name, kw = case
    threads(2)
    init = [random_array(rng, (n,), np.float32) for n in SIZES]
    grads = [[random_array(rng, p.shape, p.dtype) for p in init] for _ in range(3)]
    a, opt_a = run(name, kw, init, grads)
    b, opt_b = run(name, kw, init, grads)
    for x, y in zip(a, b):
        assert np.array_equal(x, y)
    assert_state_equal(opt_a, opt_b)
