"""fastgd.numerical_gradient: central differences, their accuracy, shapes, dtypes and errors."""
import math

import numpy as np
import pytest

from fastgd.descent.gradients import default_eps, numerical_gradient

#: how close a central difference is to the analytic gradient, per dtype (smooth functions
#: of order-one scale with the default step)
GRAD_TOL = {np.dtype(np.float32): dict(rtol=2e-2, atol=2e-3),
            np.dtype(np.float64): dict(rtol=1e-7, atol=1e-9)}


def quad(p):
    return p[0] ** 2 + p[1] ** 2 + p[0] * p[1]


def test_example_function_gives_5_7_with_norm_sqrt74(dtype):
    g = numerical_gradient(quad, np.array([1.0, 3.0], dtype))
    assert g.dtype == dtype and g.shape == (2,)
    tol = GRAD_TOL[dtype]
    np.testing.assert_allclose(g, [5.0, 7.0], **tol)
    assert math.isclose(float(np.linalg.norm(g.astype(np.float64))), math.sqrt(74),
                        rel_tol=tol["rtol"])


def test_list_input_becomes_float64():
    g = numerical_gradient(quad, [1, 3])
    assert g.dtype == np.float64
    np.testing.assert_allclose(g, [5.0, 7.0], rtol=1e-9)


def test_quadratic_is_exact_up_to_rounding(dtype, rng):
    d = 6
    M = rng.standard_normal((d, d))
    A = M @ M.T + np.eye(d)
    b = rng.standard_normal(d)
    x = rng.standard_normal(d).astype(dtype)
    f = lambda v: 0.5 * v @ A @ v + b @ v  # noqa: E731
    expected = A @ x.astype(np.float64) + b
    np.testing.assert_allclose(numerical_gradient(f, x), expected, **GRAD_TOL[dtype])


def test_smooth_nonlinear_function(dtype, rng):
    x = rng.uniform(-2, 2, 5).astype(dtype)
    f = lambda v: float(np.sum(np.sin(v) * np.exp(0.3 * v)))  # noqa: E731
    xd = x.astype(np.float64)
    expected = np.cos(xd) * np.exp(0.3 * xd) + 0.3 * np.sin(xd) * np.exp(0.3 * xd)
    np.testing.assert_allclose(numerical_gradient(f, x), expected, **GRAD_TOL[dtype])


def test_eps_is_the_relative_step():
    # for x^3 the central difference is exactly 3x^2 + h^2, with h = eps * max(1, |x|)
    g = numerical_gradient(lambda v: float(v[0] ** 3), np.array([1.0]), eps=0.1)
    assert g[0] == pytest.approx(3.01, rel=1e-12)
    g = numerical_gradient(lambda v: float(v[0] ** 3), np.array([2.0]), eps=0.1)
    assert g[0] == pytest.approx(12.04, rel=1e-12)   # h = 0.2


def test_the_step_actually_taken_is_used():
    # in float32, 1 + 1e-7 and 1 - 1e-7 round to 1 + 2^-23 and 1 - 2^-23: the difference
    # quotient divides by that rounded step, not by 2h, so a linear function stays exact
    g = numerical_gradient(lambda v: 3.0 * float(v[0]), np.array([1.0], np.float32), eps=1e-7)
    assert g[0] == pytest.approx(3.0, rel=1e-6)


def test_default_eps_is_cube_root_of_machine_epsilon():
    assert default_eps(np.float64) == pytest.approx(np.finfo(np.float64).eps ** (1 / 3))
    assert default_eps(np.float32) == pytest.approx(np.finfo(np.float32).eps ** (1 / 3))


def test_any_shape_with_a_scalar_function(dtype, rng):
    W = rng.standard_normal((3, 4)).astype(dtype)
    C = rng.standard_normal((3, 4))
    g = numerical_gradient(lambda w: float(np.sum(C * w ** 2)), W)
    assert g.shape == (3, 4) and g.dtype == dtype
    np.testing.assert_allclose(g, 2 * C * W.astype(np.float64), **GRAD_TOL[dtype])


def test_input_is_not_modified(dtype):
    x = np.array([1.0, 3.0], dtype)
    before = x.copy()
    numerical_gradient(quad, x)
    assert np.array_equal(x, before)


def test_batched_matches_row_by_row(dtype, rng):
    pts = rng.uniform(-3, 3, (7, 2)).astype(dtype)
    f = lambda p: p[..., 0] ** 2 * p[..., 1] + np.sin(p[..., 1])  # noqa: E731
    gb = numerical_gradient(f, pts, batched=True)
    assert gb.shape == (7, 2) and gb.dtype == dtype
    rows = np.array([numerical_gradient(lambda v: float(f(v)), p) for p in pts])
    np.testing.assert_allclose(gb, rows, **GRAD_TOL[dtype])
    p = pts.astype(np.float64)
    expected = np.stack([2 * p[:, 0] * p[:, 1], p[:, 0] ** 2 + np.cos(p[:, 1])], axis=1)
    np.testing.assert_allclose(gb, expected, **GRAD_TOL[dtype])


def test_numpy_scalar_and_one_element_returns():
    # a float32 value with float64 steps: rounding of f limits the accuracy to ~1e-2
    g = numerical_gradient(lambda v: np.float32(v[0] ** 2), np.array([2.0]))
    assert g[0] == pytest.approx(4.0, rel=2e-2)
    g = numerical_gradient(lambda v: np.float32(v[0] ** 2), np.array([2.0], np.float32))
    assert g.dtype == np.float32 and g[0] == pytest.approx(4.0, rel=1e-3)
    g = numerical_gradient(lambda v: np.array([v[0] ** 2]), np.array([2.0]))
    assert g[0] == pytest.approx(4.0, rel=1e-6)


@pytest.mark.parametrize("fun, x, kw, exc, match", [
    ("not callable", [1.0], {}, TypeError, "fun must be callable"),
    (quad, ["a", "b"], {}, TypeError, "x must be an array of real numbers"),
    (quad, [1 + 2j, 3.0], {}, TypeError, "x must be an array of real numbers.*complex"),
    (quad, [True, False], {}, TypeError, "x must be .*bool"),
    (quad, [[1.0], [2.0, 3.0]], {}, TypeError, "x must be an array of real numbers"),
    (quad, [np.nan, 1.0], {}, ValueError, "x contains NaN"),
    (quad, [np.inf, 1.0], {}, ValueError, "x contains NaN"),
    (quad, [1.0, 3.0], {"eps": 0.0}, ValueError, "eps must be > 0"),
    (quad, [1.0, 3.0], {"eps": -1e-3}, ValueError, "eps must be > 0"),
    (quad, [1.0, 3.0], {"eps": "small"}, TypeError, "eps must be a real number"),
    (quad, [1.0, 3.0], {"batched": 1}, TypeError, "batched must be a bool"),
    (quad, [1.0, 3.0], {"batched": True}, ValueError, "x must be 2-D"),
    (lambda v: v * 2, [1.0, 3.0], {}, ValueError, "fun must return a scalar"),
    (lambda v: "x", [1.0, 3.0], {}, TypeError, "fun must return a real number"),
    (lambda v: np.zeros(3), [[1.0, 3.0], [2.0, 2.0]], {"batched": True}, ValueError,
     "one value per row"),
])
def test_bad_input_raises_naming_the_argument(fun, x, kw, exc, match):
    with pytest.raises(exc, match=match):
        numerical_gradient(fun, x, **kw)
