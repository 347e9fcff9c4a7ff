"""fastgd.functions: analytic gradients against central differences, minima, batches, dtypes."""
import numpy as np
import pytest

from fastgd import functions
from fastgd.descent.gradients import numerical_gradient

#: every test function, with its defaults and with other parameters
FUNCTIONS = {
    **{name: f for name, f in functions.catalog().items()},
    "bowl(100, 30deg)": functions.bowl(100.0, angle=30.0),
    "bowl(1)": functions.bowl(1.0),
    "rosenbrock(2, 10)": functions.rosenbrock(2.0, 10.0),
    "plateau(0.5)": functions.plateau(0.5),
    "double_well(-0.5)": functions.double_well(-0.5),
}
IDS = list(FUNCTIONS)

GRAD_TOL = {np.dtype(np.float32): dict(rtol=3e-2, atol=3e-2),
            np.dtype(np.float64): dict(rtol=1e-6, atol=1e-6)}


def test_catalog_has_the_issues_functions():
    assert set(functions.catalog()) == {"quadratic", "bowl", "rosenbrock", "beale", "himmelblau",
                                        "plateau", "double_well"}


@pytest.mark.parametrize("name", IDS)
def test_analytic_gradient_matches_numerical_gradient(name, dtype, rng):
    f = FUNCTIONS[name]
    (x0, x1), (y0, y1) = f.bounds
    pts = np.stack([rng.uniform(x0, x1, 12), rng.uniform(y0, y1, 12)], axis=1)
    pts = np.concatenate([pts, f.minima + 0.1]).astype(dtype)
    for p in pts:
        g = f.grad(p)
        assert g.shape == (2,) and g.dtype == dtype
        num = numerical_gradient(lambda v: float(f(v.astype(np.float64))), p.astype(np.float64))
        scale = max(1.0, float(np.abs(num).max()))
        np.testing.assert_allclose(g / scale, num / scale, **GRAD_TOL[dtype],
                                   err_msg=f"{name} at {p}")


@pytest.mark.parametrize("name", IDS)
def test_minima_are_stationary_local_minima(name, rng):
    f = FUNCTIONS[name]
    assert f.minima.ndim == 2 and f.minima.shape[1] == 2 and len(f.minima) >= 1
    values = [float(f(m)) for m in f.minima]
    assert min(values) == pytest.approx(f.f_min, abs=1e-12)
    for m in f.minima:
        np.testing.assert_allclose(f.grad(m), 0.0, atol=1e-9, err_msg=f"{name} at {m}")
        around = m + 1e-3 * rng.standard_normal((20, 2))
        assert np.all(f(around) > f(m)), f"{name}: {m} is not a local minimum"


@pytest.mark.parametrize("name", IDS)
def test_batches_of_points_match_single_points(name, dtype, rng):
    f = FUNCTIONS[name]
    pts = rng.uniform(-2, 2, (3, 4, 2)).astype(dtype)
    v, g = f(pts), f.grad(pts)
    assert v.shape == (3, 4) and v.dtype == dtype
    assert g.shape == (3, 4, 2) and g.dtype == dtype
    for idx in np.ndindex(3, 4):
        assert f(pts[idx]).dtype == dtype
        np.testing.assert_allclose(v[idx], f(pts[idx]), rtol=1e-6)
        np.testing.assert_allclose(g[idx], f.grad(pts[idx]), rtol=1e-6)


def test_quadratic_function_values():
    f = functions.quadratic()
    assert float(f([1.0, 3.0])) == 13.0
    assert f.grad([1.0, 3.0]).tolist() == [5.0, 7.0]
    assert f.minima.tolist() == [[0.0, 0.0]]


@pytest.mark.parametrize("kappa, angle", [(1.0, 0.0), (10.0, 0.0), (50.0, 15.0), (400.0, -60.0)])
def test_bowl_has_the_chosen_condition_number(kappa, angle, rng):
    f = functions.bowl(kappa, angle=angle)
    eig = np.linalg.eigvalsh(f.hessian)
    np.testing.assert_allclose(eig, [1.0, kappa], rtol=1e-12)
    x = rng.standard_normal(2)
    np.testing.assert_allclose(f.grad(x), f.hessian @ x, rtol=1e-12, atol=1e-14)
    assert float(f(x)) == pytest.approx(0.5 * x @ f.hessian @ x, rel=1e-12)


def test_quadratic_hessian_and_curvature():
    f = functions.quadratic()
    np.testing.assert_allclose(np.linalg.eigvalsh(f.hessian), [1.0, 3.0])


def test_himmelblau_has_four_minima_with_value_zero():
    f = functions.himmelblau()
    assert f.minima.shape == (4, 2)
    np.testing.assert_allclose(f(f.minima), 0.0, atol=1e-20)
    assert len({tuple(np.round(m, 3)) for m in f.minima}) == 4


def test_double_well_has_a_local_and_a_global_minimum():
    f = functions.double_well(0.3)
    assert len(f.minima) == 2
    glob, loc = f.minima
    assert glob[0] < 0 < loc[0]          # positive tilt: the left well is deeper
    assert float(f(glob)) < float(f(loc))
    assert f.f_min == pytest.approx(float(f(glob)))
    flipped = functions.double_well(-0.3)
    assert flipped.minima[0][0] > 0


def test_plateau_gradient_vanishes_far_out():
    f = functions.plateau()
    assert np.linalg.norm(f.grad([3.0, 0.0])) < 1e-3
    assert np.linalg.norm(f.grad([0.7, 0.0])) > 0.5
    assert float(f([3.0, 0.0])) > 0.999


def test_beale_and_rosenbrock_minima():
    assert functions.beale().minima.tolist() == [[3.0, 0.5]]
    assert functions.rosenbrock(2.0, 10.0).minima.tolist() == [[2.0, 4.0]]


@pytest.mark.parametrize("call, exc, match", [
    (lambda: functions.quadratic()([1.0, 2.0, 3.0]), ValueError, r"shape \(2,\) or \(\.\.\., 2\)"),
    (lambda: functions.himmelblau().grad(np.zeros((3, 3))), ValueError, "shape"),
    (lambda: functions.beale()(3.0), ValueError, "shape"),
    (lambda: functions.rosenbrock()(["a", "b"]), TypeError, "x must be an array of real numbers"),
    (lambda: functions.bowl(0.5), ValueError, "condition_number"),
    (lambda: functions.bowl(float("nan")), ValueError, "condition_number"),
    (lambda: functions.plateau(0.0), ValueError, "width"),
    (lambda: functions.double_well(0.0), ValueError, "tilt"),
    (lambda: functions.double_well(5.0), ValueError, "tilt"),
])
def test_bad_input_raises(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
