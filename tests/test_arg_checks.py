"""Bad arguments to every public entry point: a TypeError or ValueError naming the argument,
raised before anything is touched; numpy scalars accepted wherever Python numbers are."""
import re

import numpy as np
import pytest

import fastgd
from fastgd import _checks, datasets, functions, nn
from fastgd.linear_model import LinearRegression

DTYPES = (np.float32, np.float64)

quad = functions.quadratic()
X3 = np.random.default_rng(0).standard_normal((5, 3))
Y3 = np.array([0, 1, 1, 0, 1])


def model64():
    return nn.MLP([3, 4, 2], activation="tanh", dtype=np.float64, seed=0)


def gradcheck(**kw):
    return fastgd.gradcheck(model64(), X3, Y3, "cross_entropy", **kw)


def minimize(**kw):
    kw.setdefault("grad", quad.grad)
    x0 = kw.pop("x0", [1.0, 3.0])
    return fastgd.minimize(quad, x0, **kw)


def ngrad(x=(1.0, 3.0), **kw):
    return fastgd.numerical_gradient(lambda v: float(v[0] ** 2 + v[1] ** 2), x, **kw)


def split(**kw):
    return datasets.train_test_split(np.zeros((8, 2)), np.arange(8) % 2, **kw)


def predict(model, **kw):
    return model.predict(np.zeros((3, 3), model.parameters()[0].dtype), **kw)


NAN, INF = float("nan"), float("inf")

# (id, call, exception, the argument's name as the message must spell it)
CASES = [
    # --- numerical_gradient
    ("ng-fun", lambda: fastgd.numerical_gradient("f", [1.0]), TypeError, "fun"),
    ("ng-x-None", lambda: ngrad(None), TypeError, "x"),
    ("ng-x-str", lambda: ngrad("ab"), TypeError, "x"),
    ("ng-x-None-element", lambda: ngrad(np.array([1.0, None], dtype=object)), TypeError, "x"),
    ("ng-x-nan", lambda: ngrad([NAN, 1.0]), ValueError, "x"),
    ("ng-eps-0", lambda: ngrad(eps=0), ValueError, "eps"),
    ("ng-eps--1", lambda: ngrad(eps=-1), ValueError, "eps"),
    ("ng-eps-str", lambda: ngrad(eps="3"), TypeError, "eps"),
    ("ng-eps-True", lambda: ngrad(eps=True), TypeError, "eps"),
    ("ng-eps-nan", lambda: ngrad(eps=NAN), ValueError, "eps"),
    ("ng-eps-inf", lambda: ngrad(eps=INF), ValueError, "eps"),
    ("ng-eps-list", lambda: ngrad(eps=[]), TypeError, "eps"),
    ("ng-eps-1e-30", lambda: ngrad(eps=1e-30), ValueError, "eps"),
    ("ng-eps-1e-9-float32", lambda: ngrad(np.array([1.0, 3.0], np.float32), eps=1e-9),
     ValueError, "eps"),
    ("ng-eps-1e-9-float32-batched",
     lambda: ngrad(np.array([[1.0, 3.0]], np.float32), eps=1e-9, batched=True), ValueError,
     "eps"),
    ("ng-batched-1", lambda: ngrad(batched=1), TypeError, "batched"),
    ("ng-batched-1-D", lambda: ngrad(batched=True), ValueError, "x"),
    # --- gradcheck
    ("gc-model", lambda: fastgd.gradcheck(lambda x: x, X3, Y3, "mse"), TypeError, "model"),
    ("gc-model-no-params", lambda: fastgd.gradcheck(nn.Sequential(nn.ReLU()), X3, X3, "mse"),
     ValueError, "model"),
    ("gc-loss", lambda: fastgd.gradcheck(model64(), X3, Y3, np.mean), TypeError, "loss"),
    ("gc-loss-name", lambda: fastgd.gradcheck(model64(), X3, Y3, "l1"), ValueError, "loss"),
    ("gc-X-features", lambda: fastgd.gradcheck(model64(), np.zeros((5, 4)), Y3, "mse"),
     ValueError, "X"),
    ("gc-X-None", lambda: fastgd.gradcheck(model64(), None, Y3, "mse"), TypeError, "X"),
    ("gc-y-scalar", lambda: fastgd.gradcheck(model64(), X3, 3, "cross_entropy"), ValueError,
     "y"),
    ("gc-max-0", lambda: gradcheck(max_checks_per_param=0), ValueError,
     "max_checks_per_param"),
    ("gc-max--1", lambda: gradcheck(max_checks_per_param=-1), ValueError,
     "max_checks_per_param"),
    ("gc-max-str", lambda: gradcheck(max_checks_per_param="3"), TypeError,
     "max_checks_per_param"),
    ("gc-max-2.5", lambda: gradcheck(max_checks_per_param=2.5), TypeError,
     "max_checks_per_param"),
    ("gc-max-True", lambda: gradcheck(max_checks_per_param=True), TypeError,
     "max_checks_per_param"),
    ("gc-max-nan", lambda: gradcheck(max_checks_per_param=NAN), TypeError,
     "max_checks_per_param"),
    ("gc-max-list", lambda: gradcheck(max_checks_per_param=[]), TypeError,
     "max_checks_per_param"),
    ("gc-eps-0", lambda: gradcheck(eps=0), ValueError, "eps"),
    ("gc-eps-1", lambda: gradcheck(eps=1), ValueError, "eps"),
    ("gc-eps-str", lambda: gradcheck(eps="3"), TypeError, "eps"),
    ("gc-eps-None", lambda: gradcheck(eps=None), TypeError, "eps"),
    ("gc-eps-nan", lambda: gradcheck(eps=NAN), ValueError, "eps"),
    ("gc-floor-0", lambda: gradcheck(floor=0), ValueError, "floor"),
    ("gc-floor--1", lambda: gradcheck(floor=-1), ValueError, "floor"),
    ("gc-floor-str", lambda: gradcheck(floor="3"), TypeError, "floor"),
    ("gc-floor-None", lambda: gradcheck(floor=None), TypeError, "floor"),
    ("gc-floor-inf", lambda: gradcheck(floor=INF), ValueError, "floor"),
    ("gc-seed--1", lambda: gradcheck(seed=-1), ValueError, "seed"),
    ("gc-seed-str", lambda: gradcheck(seed="abc"), TypeError, "seed"),
    ("gc-seed-2.5", lambda: gradcheck(seed=2.5), TypeError, "seed"),
    ("gc-seed-True", lambda: gradcheck(seed=True), TypeError, "seed"),
    ("gc-seed-list", lambda: gradcheck(seed=[]), TypeError, "seed"),
    # --- minimize
    ("min-fun", lambda: fastgd.minimize(None, [1.0]), TypeError, "fun"),
    ("min-grad", lambda: minimize(grad=3), TypeError, "grad"),
    ("min-callback", lambda: minimize(callback="stop"), TypeError, "callback"),
    ("min-x0-None", lambda: minimize(x0=None), TypeError, "x0"),
    ("min-x0-empty", lambda: minimize(x0=[]), ValueError, "x0"),
    ("min-x0-scalar", lambda: minimize(x0=1.0), ValueError, "x0"),
    ("min-x0-3-D", lambda: minimize(x0=np.zeros((2, 2, 2))), ValueError, "x0"),
    ("min-x0-str", lambda: minimize(x0="ab"), TypeError, "x0"),
    ("min-x0-inf", lambda: minimize(x0=[INF, 1.0]), ValueError, "x0"),
    ("min-method", lambda: minimize(method="newton"), ValueError, "method"),
    ("min-method-None", lambda: minimize(method=None), ValueError, "method"),
    ("min-lr-0", lambda: minimize(lr=0), ValueError, "lr"),
    ("min-lr--1", lambda: minimize(lr=-1), ValueError, "lr"),
    ("min-lr-str", lambda: minimize(lr="3"), TypeError, "lr"),
    ("min-lr-True", lambda: minimize(lr=True), TypeError, "lr"),
    ("min-lr-nan", lambda: minimize(lr=NAN), ValueError, "lr"),
    ("min-maximize-1", lambda: minimize(maximize=1), TypeError, "maximize"),
    ("min-max_iter--1", lambda: minimize(max_iter=-1), ValueError, "max_iter"),
    ("min-max_iter-str", lambda: minimize(max_iter="3"), TypeError, "max_iter"),
    ("min-max_iter-2.5", lambda: minimize(max_iter=2.5), TypeError, "max_iter"),
    ("min-max_iter-True", lambda: minimize(max_iter=True), TypeError, "max_iter"),
    ("min-max_iter-None", lambda: minimize(max_iter=None), TypeError, "max_iter"),
    ("min-max_iter-inf", lambda: minimize(max_iter=INF), TypeError, "max_iter"),
    ("min-tol--1", lambda: minimize(tol=-1), ValueError, "tol"),
    ("min-tol-None", lambda: minimize(tol=None), TypeError, "tol"),
    ("min-tol_change-nan", lambda: minimize(tol_change=NAN), ValueError, "tol_change"),
    ("min-line_search", lambda: minimize(line_search="armijo"), ValueError, "line_search"),
    ("min-line_search-True", lambda: minimize(line_search=True), ValueError, "line_search"),
    ("min-line_search-array", lambda: minimize(line_search=np.array([1, 2])), ValueError,
     "line_search"),
    ("min-accept-1", lambda: minimize(accept_if_improves=1), TypeError, "accept_if_improves"),
    ("min-keep_path-None", lambda: minimize(keep_path=None), TypeError, "keep_path"),
    ("min-hyper-unknown", lambda: minimize(bogus=1), ValueError, "bogus"),
    ("min-momentum-str", lambda: minimize(method="momentum", momentum="0.9"), TypeError,
     "momentum"),
    ("min-betas-0-d", lambda: minimize(method="adam", betas=np.array(3)), TypeError, "betas"),
    ("min-betas-short", lambda: minimize(method="adam", betas=(0.9,)), TypeError, "betas"),
    ("min-amsgrad-1", lambda: minimize(method="adam", amsgrad=1), TypeError, "amsgrad"),
    # --- LinearRegression
    ("lr-solver", lambda: _lr_fit(solver="newton"), ValueError, "solver"),
    ("lr-objective-None", lambda: _lr_fit(objective=None), ValueError, "objective"),
    ("lr-lr-0", lambda: _lr_fit(lr=0), ValueError, "lr"),
    ("lr-lr-str", lambda: _lr_fit(lr="0.1"), TypeError, "lr"),
    ("lr-max_iter-0", lambda: _lr_fit(max_iter=0), ValueError, "max_iter"),
    ("lr-max_iter-str", lambda: _lr_fit(max_iter="3"), TypeError, "max_iter"),
    ("lr-max_iter-True", lambda: _lr_fit(max_iter=True), TypeError, "max_iter"),
    ("lr-tol--1", lambda: _lr_fit(tol=-1), ValueError, "tol"),
    ("lr-tol-inf", lambda: _lr_fit(tol=INF), ValueError, "tol"),
    ("lr-n_iter_no_change-0", lambda: _lr_fit(n_iter_no_change=0), ValueError,
     "n_iter_no_change"),
    ("lr-batch_size-2.5", lambda: _lr_fit(batch_size=2.5), TypeError, "batch_size"),
    ("lr-batch_size--1", lambda: _lr_fit(batch_size=-1), ValueError, "batch_size"),
    ("lr-fit_intercept-1", lambda: _lr_fit(fit_intercept=1), TypeError,
     "fit_intercept"),
    ("lr-shuffle-None", lambda: _lr_fit(shuffle=None), TypeError, "shuffle"),
    ("lr-random_state--1", lambda: _lr_fit(random_state=-1), ValueError,
     "random_state"),
    ("lr-random_state-str", lambda: _lr_fit(random_state="abc"), TypeError,
     "random_state"),
    ("lr-random_state-2.5", lambda: _lr_fit(random_state=2.5), TypeError,
     "random_state"),
    ("lr-set_params", lambda: LinearRegression().set_params(max_iter=0).fit(*_lr_data()), ValueError,
     "max_iter"),
    ("lr-fit-X-None", lambda: LinearRegression().fit(None, [1.0]), TypeError, "X"),
    ("lr-fit-X-1-D", lambda: LinearRegression().fit([1.0, 2.0], [1.0, 2.0]), ValueError, "X"),
    ("lr-fit-X-empty", lambda: LinearRegression().fit(np.zeros((0, 2)), []), ValueError, "X"),
    ("lr-fit-y-rows", lambda: LinearRegression().fit(np.ones((3, 2)), [1.0]), ValueError, "y"),
    ("lr-fit-y-None", lambda: LinearRegression().fit(np.ones((3, 2)), None), TypeError, "y"),
    ("lr-fit-y-nan", lambda: LinearRegression().fit(np.ones((2, 1)), [1.0, NAN]), ValueError,
     "y"),
    # --- functions
    ("fn-x-None", lambda: quad(None), TypeError, "x"),
    ("fn-x-empty", lambda: quad([]), ValueError, "x"),
    ("fn-x-shape", lambda: quad.grad(np.zeros((3, 3))), ValueError, "x"),
    ("fn-bowl-0.5", lambda: functions.bowl(0.5), ValueError, "condition_number"),
    ("fn-bowl-str", lambda: functions.bowl("3"), TypeError, "condition_number"),
    ("fn-bowl-True", lambda: functions.bowl(True), TypeError, "condition_number"),
    ("fn-bowl-inf", lambda: functions.bowl(INF), ValueError, "condition_number"),
    ("fn-bowl-angle-None", lambda: functions.bowl(2.0, None), TypeError, "angle"),
    ("fn-rosenbrock-a-str", lambda: functions.rosenbrock("1"), TypeError, "a"),
    ("fn-rosenbrock-b--1", lambda: functions.rosenbrock(1.0, -1.0), ValueError, "b"),
    ("fn-plateau-0", lambda: functions.plateau(0), ValueError, "width"),
    ("fn-plateau--1", lambda: functions.plateau(-1), ValueError, "width"),
    ("fn-plateau-tiny", lambda: functions.plateau(1e-200), ValueError, "width"),
    ("fn-plateau-None", lambda: functions.plateau(None), TypeError, "width"),
    ("fn-double_well-0", lambda: functions.double_well(0), ValueError, "tilt"),
    ("fn-double_well-str", lambda: functions.double_well("0.3"), TypeError, "tilt"),
    ("fn-double_well-nan", lambda: functions.double_well(NAN), ValueError, "tilt"),
    # --- datasets
    ("ds-test_size-0", lambda: split(test_size=0), ValueError, "test_size"),
    ("ds-test_size-1", lambda: split(test_size=1), ValueError, "test_size"),
    ("ds-test_size-str", lambda: split(test_size="0.2"), TypeError, "test_size"),
    ("ds-test_size-nan", lambda: split(test_size=NAN), ValueError, "test_size"),
    ("ds-seed-str", lambda: split(seed="abc"), TypeError, "seed"),
    ("ds-seed--1", lambda: split(seed=-1), ValueError, "seed"),
    ("ds-rows", lambda: datasets.train_test_split(np.zeros((8, 2)), np.zeros(7)), ValueError,
     "X and y"),
    ("ds-X-None", lambda: datasets.train_test_split(None, np.zeros(7)), TypeError, "X"),
    ("ds-y-empty", lambda: datasets.train_test_split(np.zeros((8, 2)), []), ValueError, "y"),
    # --- nn layers
    ("lin-in-0", lambda: nn.Linear(0, 2), ValueError, "in_features"),
    ("lin-in--1", lambda: nn.Linear(-1, 2), ValueError, "in_features"),
    ("lin-in-str", lambda: nn.Linear("3", 2), TypeError, "in_features"),
    ("lin-in-2.5", lambda: nn.Linear(2.5, 2), TypeError, "in_features"),
    ("lin-in-True", lambda: nn.Linear(True, 2), TypeError, "in_features"),
    ("lin-in-None", lambda: nn.Linear(None, 2), TypeError, "in_features"),
    ("lin-out-0", lambda: nn.Linear(3, 0), ValueError, "out_features"),
    ("lin-out-float32", lambda: nn.Linear(3, np.float32(2)), TypeError, "out_features"),
    ("lin-bias-1", lambda: nn.Linear(3, 2, bias=1), TypeError, "bias"),
    ("lin-bias-str", lambda: nn.Linear(3, 2, bias="no"), TypeError, "bias"),
    ("lin-dtype-None", lambda: nn.Linear(3, 2, dtype=None), TypeError, "dtype"),
    ("lin-dtype-int", lambda: nn.Linear(3, 2, dtype=np.int64), TypeError, "dtype"),
    ("lin-dtype-str", lambda: nn.Linear(3, 2, dtype="abc"), TypeError, "dtype"),
    ("lin-init", lambda: nn.Linear(3, 2, init="he"), ValueError, "init"),
    ("lin-init-None", lambda: nn.Linear(3, 2, init=None), ValueError, "init"),
    ("lin-init-list", lambda: nn.Linear(3, 2, init=[]), ValueError, "init"),
    ("lin-seed-str", lambda: nn.Linear(3, 2, seed="abc"), TypeError, "seed"),
    ("lin-seed--1", lambda: nn.Linear(3, 2, seed=-1), ValueError, "seed"),
    ("lin-seed-True", lambda: nn.Linear(3, 2, seed=True), TypeError, "seed"),
    ("lin-seed-2.5", lambda: nn.Linear(3, 2, seed=2.5), TypeError, "seed"),
    ("lin-backend", lambda: nn.Linear(3, 2, backend="fast"), ValueError, "backend"),
    ("lin-backend-list", lambda: nn.Linear(3, 2, backend=[]), ValueError, "backend"),
    ("lin-reset-scheme", lambda: nn.Linear(3, 2).reset_parameters("he"), ValueError, "scheme"),
    ("lin-predict-batch_size-0", lambda: predict(nn.Linear(3, 2), batch_size=0), ValueError,
     "batch_size"),
    ("lin-predict-batch_size-str", lambda: predict(nn.Linear(3, 2), batch_size="4"), TypeError,
     "batch_size"),
    ("leaky-slope-str", lambda: nn.LeakyReLU("0.1"), TypeError, "negative_slope"),
    ("leaky-slope-nan", lambda: nn.LeakyReLU(NAN), ValueError, "negative_slope"),
    ("relu-backend", lambda: nn.ReLU(backend=None), ValueError, "backend"),
    ("loss-backend", lambda: nn.MSELoss(backend="c"), ValueError, "backend"),
    # --- Sequential and MLP
    ("seq-empty", lambda: nn.Sequential(), ValueError, "layers"),
    ("seq-list", lambda: nn.Sequential([nn.Linear(3, 2)]), TypeError, "layers[0]"),
    ("seq-None", lambda: nn.Sequential(nn.Linear(3, 2), None), TypeError, "layers[1]"),
    ("seq-widths", lambda: nn.Sequential(nn.Linear(3, 2), nn.Linear(3, 2)), ValueError,
     "layers[1]"),
    ("seq-predict-batch_size-2.0",
     lambda: predict(nn.Sequential(nn.Linear(3, 2)), batch_size=2.0), TypeError,
     "batch_size"),
    ("seq-predict-batch_size--1",
     lambda: predict(nn.Sequential(nn.Linear(3, 2)), batch_size=-1), ValueError,
     "batch_size"),
    ("mlp-sizes-int", lambda: nn.MLP(3), TypeError, "sizes"),
    ("mlp-sizes-None", lambda: nn.MLP(None), TypeError, "sizes"),
    ("mlp-sizes-str", lambda: nn.MLP("34"), TypeError, "sizes"),
    ("mlp-sizes-empty", lambda: nn.MLP([]), ValueError, "sizes"),
    ("mlp-sizes-one", lambda: nn.MLP([3]), ValueError, "sizes"),
    ("mlp-sizes-0", lambda: nn.MLP([3, 0, 2]), ValueError, "sizes[1]"),
    ("mlp-sizes-str-entry", lambda: nn.MLP([3, "4", 2]), TypeError, "sizes[1]"),
    ("mlp-sizes-float-entry", lambda: nn.MLP([3, 4, 2.0]), TypeError, "sizes[2]"),
    ("mlp-sizes-bool-entry", lambda: nn.MLP([True, 2]), TypeError, "sizes[0]"),
    ("mlp-activation", lambda: nn.MLP([3, 2], "gelu"), ValueError, "activation"),
    ("mlp-activation-list", lambda: nn.MLP([3, 2], ["relu"]), ValueError, "activation"),
    ("mlp-dtype", lambda: nn.MLP([3, 2], dtype="float16"), TypeError, "dtype"),
    ("mlp-seed-str", lambda: nn.MLP([3, 2], seed="abc"), TypeError, "seed"),
    ("mlp-seed--1", lambda: nn.MLP([3, 2], seed=-1), ValueError, "seed"),
    ("mlp-seed-True", lambda: nn.MLP([3, 2], seed=True), TypeError, "seed"),
    ("mlp-backend", lambda: nn.MLP([3, 2], backend="gpu"), ValueError, "backend"),
]


@pytest.mark.parametrize("call, exc, name", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_argument_is_named(call, exc, name):
    with pytest.raises(exc) as info:
        call()
    assert type(info.value) is exc
    msg = str(info.value)
    assert re.search(rf"(?<![\w\[]){re.escape(name)}(?![\w\[])", msg), msg


# ---------------------------------------------------------------------------- same message
INT_ARGS = [
    ("max_iter", lambda v: minimize(max_iter=v)),
    ("max_iter", lambda v: _lr_fit(max_iter=v)),
    ("n_iter_no_change", lambda v: _lr_fit(n_iter_no_change=v)),
    ("batch_size", lambda v: _lr_fit(batch_size=v)),
    ("max_checks_per_param", lambda v: gradcheck(max_checks_per_param=v)),
    ("in_features", lambda v: nn.Linear(v, 2)),
    ("out_features", lambda v: nn.Linear(3, v)),
    ("batch_size", lambda v: predict(nn.Linear(3, 2), batch_size=v)),
    ("batch_size", lambda v: predict(nn.Sequential(nn.Linear(3, 2)), batch_size=v)),
    ("sizes[0]", lambda v: nn.MLP([v, 2])),
]


@pytest.mark.parametrize("value, kind", [("3", "str"), (2.5, "float"), (True, "bool"),
                                         ([], "list"), (np.float32(3), "float32")])
@pytest.mark.parametrize("name, call", INT_ARGS, ids=[f"{n}-{i}" for i, (n, _) in
                                                       enumerate(INT_ARGS)])
def test_every_integer_argument_has_the_same_type_message(name, call, value, kind):
    with pytest.raises(TypeError) as info:
        call(value)
    assert str(info.value) == f"{name} must be an int, got {kind}"


@pytest.mark.parametrize("name, call", [a for a in INT_ARGS if a[0] != "max_iter"] +
                         [("max_iter", lambda v: _lr_fit(max_iter=v))])
def test_every_positive_integer_argument_has_the_same_range_message(name, call):
    with pytest.raises(ValueError) as info:
        call(0)
    assert str(info.value) == f"{name} must be >= 1, got 0"


SEED_ARGS = [
    ("seed", lambda v: gradcheck(seed=v)),
    ("seed", lambda v: nn.Linear(3, 2, seed=v)),
    ("seed", lambda v: nn.MLP([3, 2], seed=v)),
    ("seed", lambda v: split(seed=v)),
    ("random_state", lambda v: _lr_fit(random_state=v)),
]


@pytest.mark.parametrize("name, call", SEED_ARGS)
@pytest.mark.parametrize("value, exc, tail", [
    ("abc", TypeError, " must be None, an int >= 0, a numpy.random.Generator or a "
                       "numpy.random.SeedSequence, got str"),
    (1.5, TypeError, " must be None, an int >= 0, a numpy.random.Generator or a "
                     "numpy.random.SeedSequence, got float"),
    (-1, ValueError, " must be >= 0, got -1"),
])
def test_every_seed_argument_has_the_same_message(name, call, value, exc, tail):
    with pytest.raises(exc) as info:
        call(value)
    assert str(info.value) == name + tail


# ---------------------------------------------------------------------------- numpy scalars
def _same(a, b):
    """Two results are the same: arrays, tuples of arrays, floats or models' parameters."""
    if isinstance(a, nn.Module):
        a, b = a.parameters(), b.parameters()
    if isinstance(a, fastgd.MinimizeResult):
        assert a.nit == b.nit and a.message == b.message
        a, b = a.x, b.x
    if isinstance(a, LinearRegression):
        assert a.n_iter_ == b.n_iter_
        a, b = a.coef_, b.coef_
    if isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for u, v in zip(a, b):
            _same(u, v)
        return
    np.testing.assert_array_equal(a, b)


def _lr_fit(**params):
    """LinearRegression(**params) fitted: its parameters are validated in fit."""
    return LinearRegression(**params).fit(*_lr_data())


def _lr_data():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((40, 2))
    return X, X @ np.array([1.0, -1.0]) + 0.5


NUMPY_SCALARS = [
    ("ng-eps", lambda: ngrad(eps=np.float32(1e-3)), lambda: ngrad(eps=float(np.float32(1e-3)))),
    ("ng-eps-int", lambda: ngrad(eps=np.int64(1)), lambda: ngrad(eps=1)),
    ("gc-all", lambda: gradcheck(eps=np.float64(1e-5), floor=np.float32(1e-7),
                                 max_checks_per_param=np.int64(3), seed=np.int32(2)),
     lambda: gradcheck(eps=1e-5, floor=float(np.float32(1e-7)), max_checks_per_param=3,
                       seed=2)),
    ("gc-eps-float32", lambda: gradcheck(eps=np.float32(1e-5)),
     lambda: gradcheck(eps=float(np.float32(1e-5)))),
    ("min-all", lambda: minimize(lr=np.float32(0.25), max_iter=np.int64(7), tol=np.float64(0),
                                 tol_change=np.int32(0), maximize=np.bool_(False)),
     lambda: minimize(lr=float(np.float32(0.25)), max_iter=7, tol=0.0, tol_change=0)),
    ("min-adam-hyper", lambda: minimize(method="adam", max_iter=np.int16(5),
                                        betas=(np.float32(0.5), np.float64(0.9)),
                                        eps=np.float32(1e-8)),
     lambda: minimize(method="adam", max_iter=5, betas=(0.5, 0.9),
                      eps=float(np.float32(1e-8)))),
    ("lr-all", lambda: LinearRegression(solver="minibatch", lr=np.float64(0.05),
                                        max_iter=np.int64(20), tol=np.float32(0.5),
                                        n_iter_no_change=np.int8(3), batch_size=np.uint8(8),
                                        random_state=np.int64(4)).fit(*_lr_data()),
     lambda: LinearRegression(solver="minibatch", lr=0.05, max_iter=20, tol=0.5,
                              n_iter_no_change=3, batch_size=8, random_state=4).fit(*_lr_data())),
    ("lin", lambda: nn.Linear(np.int64(3), np.int32(2), bias=np.bool_(True), seed=np.int64(5)),
     lambda: nn.Linear(3, 2, bias=True, seed=5)),
    ("mlp", lambda: nn.MLP(np.array([3, 4, 2]), seed=np.uint32(7)),
     lambda: nn.MLP([3, 4, 2], seed=7)),
    ("predict", lambda: predict(nn.MLP([3, 4, 2], seed=0), batch_size=np.int64(2)),
     lambda: predict(nn.MLP([3, 4, 2], seed=0), batch_size=2)),
    ("leaky", lambda: nn.LeakyReLU(np.float64(0.2))(np.array([-1.0])),
     lambda: nn.LeakyReLU(0.2)(np.array([-1.0]))),
    ("bowl", lambda: functions.bowl(np.float32(4.0), np.int64(30)).grad([1.0, 2.0]),
     lambda: functions.bowl(4.0, 30).grad([1.0, 2.0])),
    ("double_well", lambda: functions.double_well(np.float64(0.3)).minima,
     lambda: functions.double_well(0.3).minima),
    ("split", lambda: split(test_size=np.float64(0.25), seed=np.int64(3)),
     lambda: split(test_size=0.25, seed=3)),
]


@pytest.mark.parametrize("with_numpy, with_python", [c[1:] for c in NUMPY_SCALARS],
                         ids=[c[0] for c in NUMPY_SCALARS])
def test_numpy_scalars_are_accepted_and_give_the_same_result(with_numpy, with_python):
    _same(with_numpy(), with_python())


def test_generators_and_seed_sequences_seed_every_layer(dtype):
    # numpy spawns a Generator's children from its SeedSequence: 0, SeedSequence(0) and
    # default_rng(0) all give the same model, one child stream per layer
    a = nn.MLP([3, 3, 3], dtype=dtype, seed=np.random.default_rng(0))
    b = nn.MLP([3, 3, 3], dtype=dtype, seed=np.random.SeedSequence(0))
    c = nn.MLP([3, 3, 3], dtype=dtype, seed=0)
    _same(a, b)
    _same(a, c)
    assert a[0].W.dtype == dtype
    assert not np.array_equal(a[0].W, a[2].W)
    assert not np.array_equal(a[0].W, nn.MLP([3, 3, 3], dtype=dtype, seed=1)[0].W)
    lin = nn.Linear(3, 2, dtype=dtype, seed=np.random.SeedSequence(1))
    _same(lin.W, nn.Linear(3, 2, dtype=dtype, seed=np.random.SeedSequence(1)).W)


# ---------------------------------------------------------------------------- the helpers
@pytest.mark.parametrize("value", [3, np.int8(3), np.int64(3), np.uint16(3)])
def test_integer_accepts_python_and_numpy_ints(value):
    out = _checks.integer(value, "n", low=1, high=3)
    assert out == 3 and type(out) is int


@pytest.mark.parametrize("value, exc, msg", [
    ("3", TypeError, "n must be an int, got str"),
    (3.0, TypeError, "n must be an int, got float"),
    (True, TypeError, "n must be an int, got bool"),
    (np.bool_(True), TypeError, "n must be an int, got bool"),
    (np.array(3), TypeError, "n must be an int, got ndarray"),
    (0, ValueError, "n must be >= 1, got 0"),
    (np.int64(-2), ValueError, "n must be >= 1, got -2"),
    (4, ValueError, "n must be <= 3, got 4"),
])
def test_integer_refuses(value, exc, msg):
    with pytest.raises(exc) as info:
        _checks.integer(value, "n", low=1, high=3)
    assert str(info.value) == msg


@pytest.mark.parametrize("value", [np.float32(1e-5), np.float64(1e-5), np.float16(0.5),
                                   np.int64(3), np.uint8(3), 2, 1e-5])
def test_real_accepts_python_and_numpy_numbers(value):
    out = _checks.real(value, "eps", low=0, low_open=True)
    assert type(out) is float and out == float(value)


@pytest.mark.parametrize("value, exc, msg", [
    (np.bool_(True), TypeError, "eps must be a real number, got bool"),
    (np.array(1e-5), TypeError, "eps must be a real number, got ndarray"),
    (np.complex128(1), TypeError, "eps must be a real number, got complex128"),
    (np.float32("nan"), ValueError, "eps must be finite, got nan"),
    (np.float64(0), ValueError, "eps must be > 0, got 0.0"),
])
def test_real_refuses(value, exc, msg):
    with pytest.raises(exc) as info:
        _checks.real(value, "eps", low=0, low_open=True)
    assert str(info.value) == msg


def test_seed_passes_generators_through_and_makes_ints_plain():
    g, s = np.random.default_rng(0), np.random.SeedSequence(0)
    assert _checks.seed(g) is g and _checks.seed(s) is s and _checks.seed(None) is None
    out = _checks.seed(np.uint64(2 ** 63))
    assert out == 2 ** 63 and type(out) is int


@pytest.mark.parametrize("value", [np.float32, "float32", np.dtype("float64"), float])
def test_float_dtype_accepts_what_numpy_reads_as_float32_or_float64(value):
    assert _checks.float_dtype(value) == np.dtype(value)


# ---------------------------------------------------------------------------- the eps bound
def test_eps_below_the_unit_roundoff_is_refused_at_any_x(dtype):
    u = float(np.finfo(dtype).eps) / 2
    below = float(np.nextafter(u, 0))
    for x in ([0.0], [1.0], [1e-30], [12345.0]):   # the bound does not depend on x
        with pytest.raises(ValueError, match=r"eps must be at least the unit roundoff"):
            ngrad(np.array(x, dtype), eps=below)
    # the bound is tight: just below it, both steps round back to x (a zero step)
    x = dtype.type(1) + np.finfo(dtype).eps     # the float after 1
    h = dtype.type(0.9 * u * float(x))
    assert x + h == x and x - h == x


@pytest.mark.parametrize("x", [1.0, 2.0, 1.5, 0.75, 3.999, -8.0, 0.0, 1e-20, 1e20, 7e-3])
def test_eps_at_the_unit_roundoff_always_takes_a_nonzero_step(dtype, x):
    # f(v) = v: the quotient is (x+ - x-) / (x+ - x-), exactly 1 when the step is nonzero
    # (x and the float after it: at a power of two, x + h ties and rounds back to x)
    u = float(np.finfo(dtype).eps) / 2
    for v in (dtype.type(x), np.nextafter(dtype.type(x), dtype.type(np.inf))):
        g = fastgd.numerical_gradient(lambda p: float(p[0]), np.array([v]), eps=u)
        assert g.dtype == dtype and g[0] == 1.0
        gb = fastgd.numerical_gradient(lambda p: p[..., 0].astype(np.float64),
                                       np.array([[v]]), eps=u, batched=True)
        assert gb[0, 0] == 1.0


def test_the_documented_bound_is_the_checked_one(dtype):
    from fastgd.descent.gradients import check_eps
    u = float(np.finfo(dtype).eps) / 2
    assert check_eps(u, dtype) == u
    with pytest.raises(ValueError, match=f"{u:.3g}"):
        check_eps(u * 0.99, dtype)
    assert "np.finfo(dtype).eps / 2" in fastgd.numerical_gradient.__doc__


# ---------------------------------------------------------------------------- nothing touched
def test_a_refused_gradcheck_leaves_the_model_alone():
    model = model64()
    params = [p.copy() for p in model.parameters()]
    grads = [g.copy() for g in model.gradients()]
    for kw in (dict(max_checks_per_param=0), dict(seed="abc"), dict(floor=0),
               dict(eps=np.float32(2))):
        with pytest.raises((TypeError, ValueError)):
            fastgd.gradcheck(model, X3, Y3, "cross_entropy", **kw)
    _same(model.parameters(), params)
    _same(model.gradients(), grads)


def test_a_refused_minimize_never_calls_fun():
    calls = []

    def fun(x):
        calls.append(1)
        return float(x @ x)

    for kw in (dict(max_iter="3"), dict(line_search=True), dict(tol=None), dict(lr=0)):
        with pytest.raises((TypeError, ValueError)):
            fastgd.minimize(fun, [1.0, 2.0], **kw)
    assert calls == []


def test_linear_regression_validates_in_fit_not_in_set_params():
    # scikit-learn's contract: __init__ and set_params store, fit validates
    m = LinearRegression(max_iter=50, random_state=3)
    assert m.set_params(max_iter=10, random_state="abc") is m
    assert m.max_iter == 10 and m.random_state == "abc"
    with pytest.raises(TypeError, match="random_state"):
        m.fit(*_lr_data())
    assert not hasattr(m, "coef_")


# ---------------------------------------------------------------------------- valid edge cases
def test_gradcheck_takes_a_loss_class():
    model = nn.Linear(3, 2, dtype=np.float64, seed=0)
    X, Y = X3, np.random.default_rng(1).standard_normal((5, 2))
    assert fastgd.gradcheck(model, X, Y, nn.MSELoss) == fastgd.gradcheck(model, X, Y, "mse")


def test_max_checks_per_param_one_checks_one_entry_each(monkeypatch):
    # counts the forward passes: two per checked entry (plus one forward for backprop)
    model = model64()
    n_params = len(model.parameters())
    calls = []
    real_predict = type(model).predict

    def counting(self, X, batch_size=1024):
        calls.append(1)
        return real_predict(self, X, batch_size)

    monkeypatch.setattr(type(model), "predict", counting)
    fastgd.gradcheck(model, X3, Y3, "cross_entropy", max_checks_per_param=np.int64(1))
    assert len(calls) == 2 * n_params


@pytest.mark.parametrize("backend", ["native", "reference"])
def test_a_refused_sequential_leaves_its_layers_alone(dtype, backend):
    first = nn.Linear(3, 4, dtype=dtype, seed=0, backend=backend)   # init="auto": Xavier
    W = first.W.copy()
    with pytest.raises(ValueError, match=r"layers\[2\] takes 5 features"):
        nn.Sequential(first, nn.ReLU(backend=backend), nn.Linear(5, 2, dtype=dtype,
                                                                 backend=backend))
    np.testing.assert_array_equal(first.W, W)
    nn.Sequential(first, nn.ReLU(backend=backend))                 # accepted: He now
    assert not np.array_equal(first.W, W)
