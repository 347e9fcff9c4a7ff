"""Shared helpers of the optimizer tests: the option matrix, runners and comparisons."""
import copy

import numpy as np

import fastgd

DTYPES = (np.float32, np.float64)
BACKENDS = ("native", "reference")

#: tolerances of the acceptance list: native vs reference (and other same-math comparisons)
TOL = {
    np.dtype(np.float32): dict(rtol=1e-5, atol=1e-6),
    np.dtype(np.float64): dict(rtol=1e-12, atol=1e-14),
}

#: every optimizer with every option, alone and combined (name, constructor kwargs)
CASES = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.25)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.1, weight_decay=0.05, maximize=True)),
    ("SGD", dict(lr=0.05, momentum=0.5, dampening=0.1, weight_decay=0.01, maximize=True)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.02, maximize=True)),
    ("Adagrad", dict(lr=0.1)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.05)),
    ("Adagrad", dict(lr=0.1, initial_accumulator_value=0.5, eps=1e-6)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=0.1, initial_accumulator_value=0.1,
                     maximize=True)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, momentum=0.9)),
    ("RMSprop", dict(lr=0.01, centered=True)),
    ("RMSprop", dict(lr=0.01, centered=True, momentum=0.9, weight_decay=0.01)),
    # alpha < 0.5: the lerp of grad_avg takes its "large weight" branch
    ("RMSprop", dict(lr=0.01, centered=True, momentum=0.5, alpha=0.3)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, eps=1e-4, weight_decay=0.05, maximize=True)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("Adam", dict(lr=0.01, weight_decay=0.1)),
    # beta1 < 0.5: the lerp of exp_avg takes its "large weight" branch
    ("Adam", dict(lr=0.01, betas=(0.3, 0.6), eps=1e-6, maximize=True)),
    ("Adam", dict(lr=0.01, amsgrad=True, weight_decay=0.05, maximize=True)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
    ("AdamW", dict(lr=0.01, weight_decay=0.5, betas=(0.4, 0.9), maximize=True)),
    ("Adamax", dict(lr=0.01)),
    ("Adamax", dict(lr=0.01, weight_decay=0.1)),
    # beta1 < 0.5: the lerp of exp_avg takes its "large weight" branch
    ("Adamax", dict(lr=0.01, betas=(0.3, 0.6), eps=1e-6, maximize=True)),
    ("Adamax", dict(lr=0.02, betas=(0.8, 0.99), weight_decay=0.05, maximize=True)),
    ("Lion", dict(lr=0.01)),
    ("Lion", dict(lr=0.01, weight_decay=0.1)),
    ("Lion", dict(lr=0.02, betas=(0.3, 0.6), weight_decay=0.05, maximize=True)),
    ("Adadelta", dict(lr=1.0)),
    ("Adadelta", dict(lr=0.5, rho=0.95, eps=1e-4, weight_decay=0.1)),
    ("Adadelta", dict(lr=1.0, rho=0.3, maximize=True)),
    ("RAdam", dict(lr=0.01)),
    ("RAdam", dict(lr=0.01, weight_decay=0.1)),
    ("RAdam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True, maximize=True)),
    # rho_inf = 4: never rectified, every step the SGD-with-momentum branch
    ("RAdam", dict(lr=0.01, betas=(0.3, 0.6), eps=1e-6)),
    # rho_t crosses 5 at step 6 of the 50 (betas (0.9, 0.9): rho_inf = 19)
    ("RAdam", dict(lr=0.01, betas=(0.9, 0.9))),
    ("NAdam", dict(lr=0.01)),
    ("NAdam", dict(lr=0.01, weight_decay=0.1)),
    ("NAdam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True, maximize=True)),
    # beta1 < 0.5: the lerp of exp_avg takes its "large weight" branch; a fast momentum decay
    ("NAdam", dict(lr=0.01, betas=(0.3, 0.6), eps=1e-6, momentum_decay=0.1)),
    ("NAdam", dict(lr=0.02, momentum_decay=0.0, maximize=True)),
]


def case_id(case):
    name, kw = case
    opts = ",".join(f"{k}={v}" for k, v in kw.items() if k != "lr")
    return f"{name}({opts})"


CASE_IDS = [case_id(c) for c in CASES]


def make(name, params, backend="native", **kw):
    return getattr(fastgd.optim, name)(params, backend=backend, **kw)


def random_array(rng, shape, dtype, order="C", scale=1.0):
    # np.array keeps 0-d shapes (np.ascontiguousarray would make them 1-d)
    return np.array(scale * rng.standard_normal(shape), dtype=dtype, order=order)


def copies(arrays):
    return [a.copy(order="K") for a in arrays]


def snapshot(opt):
    """A deep copy of everything an optimizer holds: state and hyper-parameters."""
    sd = opt.state_dict()
    return copy.deepcopy(sd)


def assert_trees_equal(a, b, path="root"):
    """Exact (bitwise, NaN == NaN) equality of nested dicts/lists/arrays."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        assert isinstance(a, np.ndarray) and isinstance(b, np.ndarray), path
        assert a.dtype == b.dtype and a.shape == b.shape, path
        assert np.array_equal(a, b, equal_nan=True), path
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{path}: {sorted(a)} != {sorted(b)}"
        for k in a:
            assert_trees_equal(a[k], b[k], f"{path}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_trees_equal(x, y, f"{path}[{i}]")
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def assert_state_close(opt_a, opt_b, tol):
    sa, sb = opt_a.state, opt_b.state
    assert set(sa) == set(sb)
    for i in sa:
        assert set(sa[i]) == set(sb[i]), i
        assert sa[i]["step"] == sb[i]["step"], i
        for k, v in sa[i].items():
            if k == "step" or v is None or isinstance(v, float):   # float: a scalar state
                assert v == sb[i][k], (i, k)
                continue
            assert v.dtype == sb[i][k].dtype
            np.testing.assert_allclose(v, sb[i][k], **tol, err_msg=f"state[{i}][{k!r}]")


def assert_state_equal(opt_a, opt_b):
    assert_trees_equal(opt_a.state, opt_b.state, "state")
