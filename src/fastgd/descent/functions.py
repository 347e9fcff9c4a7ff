r"""Two-dimensional test functions with analytic gradients, for minimisation and plots.

Each factory returns an `Objective`: call it for values, ``.grad`` for gradients. Both work
on one point (shape ``(2,)``) or on many at once (shape ``(..., 2)``), keep float32 and
float64, and are what `fastgd.minimize` expects for a batch of starting points.

=============  ==========================================  ==============================
factory        :math:`f(x, y)`                             what it shows
=============  ==========================================  ==============================
`quadratic`    :math:`x^2 + y^2 + xy`                      the running example
`bowl`         :math:`\tfrac12(u^2 + \kappa v^2)`          ill-conditioning: zig-zags
`rosenbrock`   :math:`(a - x)^2 + b(y - x^2)^2`            a curved, flat valley
`beale`        three squared terms                         steep walls, flat floor
`himmelblau`   :math:`(x^2 + y - 11)^2 + (x + y^2 - 7)^2`  four minima: the start decides
`plateau`      :math:`1 - e^{-(x^2 + y^2)/w^2}`            vanishing gradients far out
`double_well`  :math:`(x^2 - 1)^2 + t x + y^2`             a local and a global minimum
=============  ==========================================  ==============================

>>> import numpy as np
>>> from fastgd import functions
>>> f = functions.himmelblau()
>>> float(f([3.0, 2.0])), f.grad([3.0, 2.0]).tolist()
(0.0, [0.0, 0.0])
>>> f(np.array([[3.0, 2.0], [0.0, 0.0]]))          # a batch of points
array([  0., 170.])
"""
import math
from typing import Any, Callable, Sequence

import numpy as np

from .. import _checks
from .._typing import ArrayLike, FloatArray
from .gradients import as_real_array

__all__ = ["Objective", "quadratic", "bowl", "rosenbrock", "beale", "himmelblau", "plateau",
           "double_well", "catalog"]


class Objective:
    """A function of points ``(..., 2)`` with its analytic gradient and known minima.

    Attributes
    ----------
    name : str
    formula : str
        The formula in matplotlib mathtext, for plot titles.
    minima : ndarray, shape (m, 2)
        Every local minimum (the global ones included).
    f_min : float
        The global minimum value.
    bounds : ((float, float), (float, float))
        A plotting window ``((xmin, xmax), (ymin, ymax))`` that shows the minima.
    hessian : ndarray of shape (2, 2) or None
        The constant Hessian of a quadratic (its largest eigenvalue is the curvature
        :math:`L` that makes gradient descent diverge for ``lr > 2 / L``); None otherwise.
    """

    dim = 2

    def __init__(self, name: str, formula: str, value: Callable[[Any, Any], Any],
                 grad: Callable[[Any, Any], tuple[Any, Any]], *, minima: ArrayLike,
                 bounds: Sequence[Sequence[float]], hessian: ArrayLike | None = None) -> None:
        self.name = name
        self.formula = formula
        self._value = value
        self._grad = grad
        self.minima = np.array(minima, dtype=np.float64).reshape(-1, 2)
        self.f_min = float(min(value(m[0], m[1]) for m in self.minima))
        (x0, x1), (y0, y1) = bounds
        self.bounds = ((float(x0), float(x1)), (float(y0), float(y1)))
        self.hessian = None if hessian is None else np.array(hessian, dtype=np.float64)

    def _points(self, x: ArrayLike) -> FloatArray:
        x = as_real_array(x, "x")
        if x.ndim == 0 or x.shape[-1] != 2:
            raise ValueError(f"x must have shape (2,) or (..., 2) for the two-dimensional "
                             f"function {self.name}, got shape {x.shape}")
        return x

    def __call__(self, x: ArrayLike) -> Any:
        """``f(x)``: a scalar for one point, an array of shape ``x.shape[:-1]`` for many."""
        x = self._points(x)
        v = self._value(x[..., 0], x[..., 1])
        return v if x.ndim > 1 else x.dtype.type(v)

    def grad(self, x: ArrayLike) -> FloatArray:
        """The gradient, with ``x``'s shape and dtype."""
        x = self._points(x)
        gx, gy = self._grad(x[..., 0], x[..., 1])
        return np.stack([gx, gy], axis=-1).astype(x.dtype, copy=False)

    def __repr__(self) -> str:
        return f"<Objective {self.name}: {self.formula}>"


def quadratic() -> Objective:
    r"""The example function :math:`f(x, y) = x^2 + y^2 + xy`.

    .. math::
        \nabla f = (2x + y,\; 2y + x), \qquad
        H = \begin{pmatrix} 2 & 1 \\ 1 & 2 \end{pmatrix}

    The minimum is (0, 0); the Hessian's eigenvalues are 1 and 3, so gradient descent
    converges for ``lr < 2/3`` and diverges beyond.

    Examples
    --------
    >>> f = quadratic()
    >>> float(f([1.0, 3.0])), f.grad([1.0, 3.0]).tolist()
    (13.0, [5.0, 7.0])
    """
    return Objective(
        "quadratic", r"$x^2 + y^2 + xy$",
        lambda x, y: x * x + y * y + x * y,
        lambda x, y: (2 * x + y, 2 * y + x),
        minima=[(0.0, 0.0)], bounds=((-4, 4), (-4, 4)), hessian=[[2.0, 1.0], [1.0, 2.0]])


def bowl(condition_number: float = 10.0, angle: float = 0.0) -> Objective:
    r"""A quadratic bowl with a chosen condition number :math:`\kappa`.

    .. math::
        f = \tfrac12\,(u^2 + \kappa v^2), \qquad
        (u, v) = (x\cos\phi + y\sin\phi,\; -x\sin\phi + y\cos\phi)

    The curvatures are 1 and :math:`\kappa` (= :math:`L`): a step size that suits the
    steep direction crawls along the flat one, and a larger one zig-zags across the valley.

    Parameters
    ----------
    condition_number : float, default 10
        :math:`\kappa \ge 1`.
    angle : float, default 0
        Rotation :math:`\phi` of the valley, in degrees.

    Examples
    --------
    >>> f = bowl(4.0)
    >>> float(f([1.0, 1.0])), f.grad([1.0, 1.0]).tolist()
    (2.5, [1.0, 4.0])
    """
    kappa = _checks.real(condition_number, "condition_number", low=1)
    phi = math.radians(_checks.real(angle, "angle"))
    c, s = math.cos(phi), math.sin(phi)
    # H = R^T diag(1, kappa) R with R the rotation by phi
    a = c * c + kappa * s * s
    b = (1 - kappa) * c * s
    d = s * s + kappa * c * c
    half = max(3.0 / math.sqrt(kappa), 2.0)
    return Objective(
        "bowl", rf"$\frac{{1}}{{2}}(u^2 + {kappa:g}\,v^2)$",
        lambda x, y: 0.5 * (a * x * x + 2 * b * x * y + d * y * y),
        lambda x, y: (a * x + b * y, b * x + d * y),
        minima=[(0.0, 0.0)], bounds=((-3.5, 3.5), (-half, half)),
        hessian=[[a, b], [b, d]])


def rosenbrock(a: float = 1.0, b: float = 100.0) -> Objective:
    r"""Rosenbrock's banana :math:`f = (a - x)^2 + b\,(y - x^2)^2`, minimum :math:`(a, a^2)`.

    .. math::
        \nabla f = \bigl(-2(a - x) - 4 b x (y - x^2),\; 2 b (y - x^2)\bigr)

    Parameters
    ----------
    a : float, default 1
        Where the minimum is.
    b : float, default 100
        The steepness of the valley's walls (>= 0; a negative b has no minimum).

    Examples
    --------
    >>> f = rosenbrock()
    >>> float(f([1.0, 1.0])), f.grad([0.0, 0.0]).tolist()
    (0.0, [-2.0, 0.0])
    """
    a, b = _checks.real(a, "a"), _checks.real(b, "b", low=0)
    return Objective(
        "rosenbrock", rf"$({a:g} - x)^2 + {b:g}\,(y - x^2)^2$",
        lambda x, y: (a - x) ** 2 + b * (y - x * x) ** 2,
        lambda x, y: (-2 * (a - x) - 4 * b * x * (y - x * x), 2 * b * (y - x * x)),
        minima=[(a, a * a)], bounds=((-2, 2), (-1, 3)))


def beale() -> Objective:
    r"""Beale's function, minimum (3, 0.5).

    .. math::
        f = (1.5 - x + xy)^2 + (2.25 - x + xy^2)^2 + (2.625 - x + xy^3)^2

    Examples
    --------
    >>> f = beale()
    >>> float(f([3.0, 0.5])), f.grad([3.0, 0.5]).tolist()
    (0.0, [0.0, 0.0])
    """
    c = (1.5, 2.25, 2.625)

    def value(x: Any, y: Any) -> Any:
        return sum((ci - x + x * y ** (i + 1)) ** 2 for i, ci in enumerate(c))

    def grad(x: Any, y: Any) -> tuple[Any, Any]:
        gx = gy = 0
        for i, ci in enumerate(c):
            t = ci - x + x * y ** (i + 1)
            gx = gx + 2 * t * (y ** (i + 1) - 1)
            gy = gy + 2 * t * (i + 1) * x * y ** i
        return gx, gy

    return Objective("beale", r"Beale", value, grad, minima=[(3.0, 0.5)],
                     bounds=((-4.5, 4.5), (-4.5, 4.5)))


def himmelblau() -> Objective:
    r"""Himmelblau's function: four minima with f = 0; which one a descent reaches depends
    on where it starts.

    .. math::
        f = (x^2 + y - 11)^2 + (x + y^2 - 7)^2,\quad
        \nabla f = \bigl(4x(x^2 + y - 11) + 2(x + y^2 - 7),\;
                         2(x^2 + y - 11) + 4y(x + y^2 - 7)\bigr)

    Examples
    --------
    >>> f = himmelblau()
    >>> f.minima.shape
    (4, 2)
    """
    return Objective(
        "himmelblau", r"$(x^2 + y - 11)^2 + (x + y^2 - 7)^2$",
        lambda x, y: (x * x + y - 11) ** 2 + (x + y * y - 7) ** 2,
        lambda x, y: (4 * x * (x * x + y - 11) + 2 * (x + y * y - 7),
                      2 * (x * x + y - 11) + 4 * y * (x + y * y - 7)),
        minima=[(3.0, 2.0), (-2.805118086952745, 3.131312518250573),
                (-3.779310253377747, -3.283185991286170), (3.584428340330492, -1.848126526964404)],
        bounds=((-5.5, 5.5), (-5.5, 5.5)))


def plateau(width: float = 1.0) -> Objective:
    r"""A well in a plateau: :math:`f = 1 - \exp(-(x^2 + y^2)/w^2)`, minimum (0, 0).

    .. math::
        \nabla f = \frac{2}{w^2}\,e^{-(x^2 + y^2)/w^2}\,(x, y)

    A few widths away from the well the gradient is nearly zero: plain gradient descent
    crawls, while methods that normalise the step (RMSprop, Adam) keep their pace.

    Parameters
    ----------
    width : float, default 1
        :math:`w > 0`, the radius of the well.

    Examples
    --------
    >>> f = plateau()
    >>> bool(f.grad([3.0, 0.0])[0] < 1e-3)          # almost flat three widths out
    True
    """
    w2 = _checks.real(width, "width", low=0, low_open=True) ** 2
    if not 0 < w2 < math.inf:
        raise ValueError(f"width must have a finite, nonzero square, got {width!r}")
    return Objective(
        "plateau", rf"$1 - \exp(-(x^2 + y^2)/{w2:g})$",
        lambda x, y: 1 - np.exp(-(x * x + y * y) / w2),
        lambda x, y: (2 / w2 * x * np.exp(-(x * x + y * y) / w2),
                      2 / w2 * y * np.exp(-(x * x + y * y) / w2)),
        minima=[(0.0, 0.0)], bounds=((-4 * math.sqrt(w2), 4 * math.sqrt(w2)),) * 2)


def double_well(tilt: float = 0.3) -> Objective:
    r"""A tilted double well: a local minimum near (1, 0) and the global one near (-1, 0).

    .. math::
        f = (x^2 - 1)^2 + t\,x + y^2, \qquad \nabla f = (4x(x^2 - 1) + t,\; 2y)

    Parameters
    ----------
    tilt : float, default 0.3
        :math:`t`, with :math:`0 < |t| < 8/\sqrt{27}` for two minima; the positive tilt
        makes the left well the deeper one.

    Examples
    --------
    >>> f = double_well()
    >>> len(f.minima), float(f.minima[0, 0]) < 0 < float(f.minima[1, 0])
    (2, True)
    """
    t = _checks.real(tilt, "tilt")
    limit = 8 / math.sqrt(27)
    if not 0 < abs(t) < limit:
        raise ValueError(f"tilt must satisfy 0 < |tilt| < {limit:.4f} for two minima, got {tilt!r}")
    roots = np.roots([4.0, 0.0, -4.0, t])
    xs = sorted(float(r.real) for r in roots if abs(r.imag) < 1e-12 and 12 * r.real ** 2 - 4 > 0)
    xs.sort(key=lambda v: (v - 1) ** 2 * (v + 1) ** 2 + t * v)  # global minimum first
    return Objective(
        "double_well", rf"$(x^2 - 1)^2 + {t:g}\,x + y^2$",
        lambda x, y: (x * x - 1) ** 2 + t * x + y * y,
        lambda x, y: (4 * x * (x * x - 1) + t, 2 * y),
        minima=[(v, 0.0) for v in xs], bounds=((-2, 2), (-1.5, 1.5)))


def catalog() -> dict[str, Objective]:
    """Every test function with its default parameters, by name.

    >>> sorted(catalog())[:3]
    ['beale', 'bowl', 'double_well']
    """
    return {f().name: f() for f in (quadratic, bowl, rosenbrock, beale, himmelblau, plateau,
                                     double_well)}
