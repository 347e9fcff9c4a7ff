"""`MLPClassifier` and `MLPRegressor`: scikit-learn's multilayer perceptrons on fastgd's
native training path.

The semantics follow ``sklearn/neural_network/_multilayer_perceptron.py``: the objective of a
batch of :math:`m` rows is

.. math::
    L = \\ell(y, \\hat y) + \\frac{\\alpha}{2m}\\sum_l \\lVert W_l\\rVert_F^2

(the intercepts are not penalised; :math:`\\ell` is the mean log-loss, or half the mean squared
error for regression), minimised by mini-batch Adam or SGD (each epoch one
``Program.train_steps`` call with the optimizer's bound native updates, the penalty as the
optimizer's ``weight_decay`` on a group of the weights) or by full-batch L-BFGS (scipy's
``L-BFGS-B`` with loss and gradient from one ``Program.train_batch`` call per evaluation).
"""
from __future__ import annotations

import warnings
from numbers import Integral, Real
from typing import Any

import numpy as np
import scipy.optimize
import scipy.special
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state, gen_batches
# (_param_validation is private, but its constraints are the documented way for estimators
# outside scikit-learn to declare _parameter_constraints; InvalidParameterError is
# scikit-learn's error for a bad parameter)
from sklearn.utils._param_validation import InvalidParameterError, Interval, Options, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import type_of_target, unique_labels
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from .. import optim as _optim_pkg
from ..nn.activations import ACTIVATIONS
from ..nn.linear import Linear
from ..nn.sequential import Sequential

_ACT = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}
_SOLVERS = ("lbfgs", "sgd", "adam")


def _solver_ok(name: object) -> bool:
    if not isinstance(name, str):
        return False
    if name in _SOLVERS:
        return True
    try:
        _optim_pkg.by_name(name)
    except (KeyError, ValueError, TypeError):
        return False
    return True


def _logistic(z: np.ndarray) -> np.ndarray:
    out: np.ndarray = scipy.special.expit(z)
    return out


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    out: np.ndarray = e / e.sum(axis=1, keepdims=True)
    return out


class _BaseMLP(BaseEstimator):
    _parameter_constraints: dict[str, list[Any]] = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions({"identity", "logistic", "tanh", "relu"})],
        "solver": [str],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"),
                             Options(Real, {np.inf})],
        "max_fun": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(self, hidden_layer_sizes: Any = (100,), activation: str = "relu", *,
                 solver: str = "adam", alpha: float = 0.0001, batch_size: Any = "auto",
                 learning_rate: str = "constant", learning_rate_init: float = 0.001,
                 power_t: float = 0.5, max_iter: int = 200, shuffle: bool = True,
                 random_state: Any = None, tol: float = 1e-4, verbose: bool = False,
                 warm_start: bool = False, momentum: float = 0.9,
                 nesterovs_momentum: bool = True, early_stopping: bool = False,
                 validation_fraction: float = 0.1, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-8, n_iter_no_change: int = 10,
                 max_fun: int = 15000) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun

    # ---- what the subclasses define
    _loss_kind: str
    # the optimizer's native updates bound to the gradients (`_bind`)
    _hooks: list[Any] | None
    _tail_hooks: list[Any]

    def _targets(self, y: np.ndarray, incremental: bool, classes: Any = None) -> np.ndarray:
        raise NotImplementedError

    def _out_activation(self) -> str:
        raise NotImplementedError

    # ---- the network
    def _layer_sizes(self, n_features: int) -> list[int]:
        hidden = self.hidden_layer_sizes
        if not hasattr(hidden, "__iter__"):
            hidden = [hidden]
        hidden = list(hidden)
        if any(not isinstance(h, (Integral, np.integer)) or h <= 0 for h in hidden):
            raise ValueError("hidden_layer_sizes must be > 0, got %s." % hidden)
        return [n_features] + [int(h) for h in hidden] + [self.n_outputs_]

    def _build(self, sizes: list[int], dtype: np.dtype) -> None:
        """The network and scikit-learn's Glorot-uniform initialisation of it."""
        rng = self._random_state
        layers: list[Any] = []
        inits: list[tuple[np.ndarray, np.ndarray]] = []
        factor = 2.0 if self.activation == "logistic" else 6.0
        for i in range(len(sizes) - 1):
            fan_in, fan_out = sizes[i], sizes[i + 1]
            bound = np.sqrt(factor / (fan_in + fan_out))
            W = rng.uniform(-bound, bound, (fan_in, fan_out))
            b = rng.uniform(-bound, bound, fan_out)
            inits.append((W, b))
            layers.append(Linear(fan_in, fan_out, dtype=dtype))
            if i < len(sizes) - 2:
                layers.append(ACTIVATIONS[_ACT[self.activation]]())
        model = Sequential(*layers)   # (it initialises the layers: set them after)
        for lin, (W, b) in zip([m for m in model.layers if isinstance(m, Linear)], inits):
            lin.W, lin.b = W.astype(dtype, copy=False), b.astype(dtype, copy=False)
        self._attach(model)

    def _attach(self, model: Sequential) -> None:
        self._model = model
        lins = [m for m in model.layers if isinstance(m, Linear)]
        self.coefs_ = [lin.W for lin in lins]
        self.intercepts_ = [lin.b for lin in lins]
        self._lins = lins

    def __getstate__(self) -> dict[str, Any]:
        """The estimator's attributes without the compiled network and the native
        bindings; the optimizer as its state dict (a later ``partial_fit`` or warm start of
        the unpickled estimator continues as this one would, as scikit-learn's)."""
        state = self.__dict__.copy()
        opt = state.pop("_optimizer", None)
        if opt is not None:
            state["_optimizer_state"] = opt.state_dict()
        for k in ("_model", "_lins", "_hooks", "_tail_hooks", "_bound_for"):
            state.pop(k, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        opt_state = state.pop("_optimizer_state", None)
        self.__dict__.update(state)
        if "coefs_" in state:
            self._rebuild_from_arrays()
            if opt_state is not None:
                self._optimizer = self._new_optimizer()
                self._optimizer.load_state_dict(opt_state)
                self._hooks = None

    def _rebuild_from_arrays(self) -> None:
        coefs, intercepts = self.coefs_, self.intercepts_
        dtype = coefs[0].dtype
        layers: list[Any] = []
        for i, W in enumerate(coefs):
            layers.append(Linear(W.shape[0], W.shape[1], dtype=dtype))
            if i < len(coefs) - 1:
                layers.append(ACTIVATIONS[_ACT[self.activation]]())
        model = Sequential(*layers)
        for lin, W, b in zip([m for m in model.layers if isinstance(m, Linear)], coefs,
                             intercepts):
            lin.W, lin.b = np.asarray(W), np.asarray(b)
        self._attach(model)

    def _sync(self) -> None:
        """Rebuild the network if the user replaced coefs_/intercepts_ arrays."""
        lins = getattr(self, "_lins", None)
        if (lins is None or len(lins) != len(self.coefs_)
                or any(lin.W is not W or lin.b is not b
                       for lin, W, b in zip(lins, self.coefs_, self.intercepts_))):
            self._rebuild_from_arrays()

    # ---- forward
    def _raw(self, X: np.ndarray) -> np.ndarray:
        self._sync()
        out: np.ndarray = self._model.predict(X)
        return out

    def _forward_out(self, X: np.ndarray) -> np.ndarray:
        z = self._raw(X)
        act = self.out_activation_
        if act == "logistic":
            return _logistic(z)
        if act == "softmax":
            return _softmax(z)
        if act == "exp":
            out: np.ndarray = np.exp(z)
            return out
        return z

    def _penalty(self) -> float:
        return float(sum(np.dot(W.ravel(), W.ravel()) for W in self.coefs_))

    # ---- fitting
    def _check_input(self, X: Any, y: Any, incremental: bool, reset: bool) -> tuple[Any, Any]:
        X, y = validate_data(self, X, y, accept_sparse=False, multi_output=True,
                             dtype=(np.float64, np.float32), reset=reset,
                             y_numeric=not is_classifier(self))
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        return X, y

    def _fit(self, X: Any, y: Any, sample_weight: Any, incremental: bool,
             classes: Any = None) -> Any:
        first = not (incremental or self.warm_start) or not hasattr(self, "coefs_")
        X, y = self._check_input(X, y, incremental, reset=first)
        if sample_weight is not None:
            from sklearn.utils.validation import _check_sample_weight
            sample_weight = _check_sample_weight(sample_weight, X, dtype=X.dtype)
        Y = self._targets(y, not first, classes)
        # as scikit-learn: from random_state again on every call (fit, partial_fit)
        self._random_state = check_random_state(self.random_state)
        if not first and self.coefs_[0].dtype != X.dtype:
            X = X.astype(self.coefs_[0].dtype)
        Y = Y.astype(X.dtype, copy=False) if self._loss_kind != "cross_entropy" else Y
        if first:
            self.n_outputs_ = Y.shape[1] if Y.ndim == 2 else len(self.classes_)
            sizes = self._layer_sizes(X.shape[1])
            self.n_layers_ = len(sizes)
            self.out_activation_ = self._out_activation()
            self._build(sizes, X.dtype)
            self.n_iter_ = 0
            self.t_ = 0
            if self.solver != "lbfgs":
                self._init_curves()
        else:
            self._sync()
            self._layer_sizes(X.shape[1])
            if Y.ndim == 2 and Y.shape[1] != self.n_outputs_:
                raise ValueError(f"y has {Y.shape[1]} outputs, but {type(self).__name__} was "
                                 f"fitted with {self.n_outputs_}; warm_start and partial_fit "
                                 "continue with the same outputs")
        if self.solver == "lbfgs":
            if incremental:
                raise AttributeError("partial_fit is only available for stochastic "
                                     "optimizers. %s is not stochastic." % self.solver)
            self._fit_lbfgs(X, Y, sample_weight)
        else:
            self._fit_stochastic(X, Y, y, sample_weight, incremental, first)
        return self

    def _init_curves(self) -> None:
        """The stochastic solvers' attributes (scikit-learn's; none of them for L-BFGS)."""
        self.loss_curve_: list[float] = []
        self._no_improvement_count = 0
        if self.early_stopping:
            self.validation_scores_: list[float] | None = []
            self.best_validation_score_: float | None = -np.inf
            self.best_loss_: float | None = None
        else:
            self.best_loss_ = np.inf
            self.validation_scores_ = None
            self.best_validation_score_ = None

    # the native program's loss against scikit-learn's
    def _data_loss_scale(self) -> float:
        """scikit-learn's data loss over the native program's: fastgd's mse is
        mean((p - y)^2) over all elements, scikit-learn's squared loss half of it; fastgd's
        BCE is a mean over all elements, scikit-learn's log-loss of logistic outputs a sum
        over the outputs and a mean over the rows."""
        if self._loss_kind == "mse":
            return 0.5
        if self._loss_kind == "bce_with_logits":
            return float(self.n_outputs_)
        return 1.0

    def _grad_scale(self) -> float:
        """scikit-learn's gradient over the native program's. scikit-learn's output delta is
        always p - y per row (its `_backprop`), so for squared error with k outputs its
        gradient is that of 0.5 * k * mean((p - y)^2), k times the gradient of the loss it
        reports; the training steps here follow scikit-learn's gradient. 1 where the
        gradient is computed in Python (the Poisson loss)."""
        if self._loss_kind == "mse":
            return 0.5 * float(self.n_outputs_)
        if self._loss_kind == "poisson":
            return 1.0
        return self._data_loss_scale()

    def _new_optimizer(self) -> Any:
        """scikit-learn's optimizer of ``solver`` over two groups, the weights (with the
        penalty as weight decay, set by `_bind` for the batch size) and the intercepts."""
        weights = [lin.W for lin in self._lins]
        biases = [lin.b for lin in self._lins]
        s = self._grad_scale()
        # The native gradient is g/s: SGD's step lr on g becomes lr*s on g/s (`_set_lr`),
        # and Adam's eps on g becomes eps/s.
        lr = float(self.learning_rate_init)
        groups = [{"params": weights, "weight_decay": 0.0},
                  {"params": biases, "weight_decay": 0.0}]
        if self.solver == "adam":
            return _optim_pkg.Adam(groups, lr=lr, betas=(self.beta_1, self.beta_2),
                                   eps=float(self.epsilon) / s)
        if self.solver == "sgd":
            mom = float(self.momentum)
            return _optim_pkg.SGD(groups, lr=lr * s, momentum=mom,
                                  nesterov=bool(self.nesterovs_momentum and mom > 0))
        cls: Any = _optim_pkg.by_name(self.solver)
        return cls(groups, lr=lr)

    def _weight_decay(self, rows: int) -> float:
        """The penalty alpha/(2 m)|W|^2 of a batch of m rows on the loss L is weight decay
        alpha/(m s) on the native loss L/s."""
        return float(self.alpha) / (rows * self._grad_scale())

    def _bind(self, grads: list[np.ndarray], n: int, bs: int) -> None:
        """The optimizer's native updates as hooks for the full batches of ``bs`` rows and
        for a last batch of n % bs rows, each with its own penalty scale (scikit-learn
        scales the penalty by the rows of each batch); the two share the optimizer's state.
        The weights' group is left with the full batches' weight decay (`_weighted_epoch`)."""
        group = self._optimizer.param_groups[0]
        tail = n % bs
        if tail:
            group["weight_decay"] = self._weight_decay(tail)
            self._tail_hooks = [u.hook() for u in self._optimizer.bind(grads)]
        else:
            self._tail_hooks = []
        group["weight_decay"] = self._weight_decay(bs)
        self._hooks = [u.hook() for u in self._optimizer.bind(grads)]
        self._bound_for = (n, bs)

    def _set_lr(self, lr: float) -> None:
        """Set the learning rate (scikit-learn's, on L) of every group; the hooks are bound
        again before the next epoch.

        SGD: scikit-learn's velocity is v = momentum v - lr g, the update p += v; fastgd's
        (torch's) buffer is b = momentum b + g, the update p -= lr b. They agree while v =
        -lr b, so when lr changes (invscaling, adaptive) the buffer is rescaled by
        old/new lr to keep scikit-learn's velocity."""
        s = self._grad_scale() if self.solver == "sgd" else 1.0
        opt = self._optimizer
        old, new = float(opt.param_groups[0]["lr"]), lr * s
        if self.solver == "sgd" and old != new:
            for entry in opt.state.values():
                buf = entry.get("momentum_buffer")
                if buf is not None:
                    buf *= buf.dtype.type(old / new)
        for g in opt.param_groups:
            g["lr"] = new
        self._hooks = None

    def _fit_stochastic(self, X: np.ndarray, Y: np.ndarray, y: np.ndarray,
                        sample_weight: Any, incremental: bool, first: bool) -> None:
        n = X.shape[0]
        if not hasattr(self, "loss_curve_"):     # (warm start from an L-BFGS fit)
            self._init_curves()
        sw = None if sample_weight is None else np.asarray(sample_weight, np.float64)
        if sw is None and self._loss_kind == "poisson":   # (no native Poisson loss)
            sw = np.ones(n)
        early_stopping = self.early_stopping and not incremental
        Xv = yv = None
        if early_stopping:
            strat = y if is_classifier(self) and y.ndim == 1 else None
            parts = train_test_split(X, Y, y, *(() if sw is None else (sw,)),
                                     random_state=self._random_state,
                                     test_size=self.validation_fraction, stratify=strat)
            X, Xv, Y, _Yv, _y, yv = parts[:6]
            sw_val = None if sw is None else parts[7]
            sw = None if sw is None else parts[6]
            if is_classifier(self):
                yv = yv if yv.ndim == 1 or yv.shape[1] > 1 else yv.ravel()
            n = X.shape[0]
            if n < 2 or Xv.shape[0] < 2:
                raise ValueError("The validation set is too small; increase "
                                 "validation_fraction or provide more samples.")
        if self.batch_size == "auto":
            bs = min(200, n)
        else:
            if self.batch_size > n:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. "
                              "It is going to be clipped", stacklevel=3)
            bs = int(np.clip(self.batch_size, 1, n))
        if not incremental or not hasattr(self, "_optimizer"):
            # as scikit-learn: a new optimizer for every fit (also with warm_start), kept
            # from one partial_fit call to the next
            self._optimizer = self._new_optimizer()
            self._lr = float(self.learning_rate_init)
            self._set_lr(self._lr)
        X = np.ascontiguousarray(X)
        Y = np.ascontiguousarray(Y)
        program = self._model.program
        assert program is not None
        grads = self._model.gradients()   # [dW0, db0, dW1, ...]; the groups: weights, biases
        grads = grads[0::2] + grads[1::2]
        opt_grads = grads
        losses = np.empty(-(-n // bs))
        sizes = np.array([sl.stop - sl.start for sl in gen_batches(n, bs)], dtype=np.float64)
        order = np.arange(n, dtype=np.intp)
        scale = self._data_loss_scale()
        rng = self._random_state
        max_iter = 1 if incremental else self.max_iter
        n_full = n - n % bs
        if getattr(self, "_bound_for", None) != (n, bs):
            self._hooks = None     # (partial_fit with another number of rows)
        self.n_iter_ = 0        # as scikit-learn: the epochs of this call
        try:
            for _it in range(max_iter):
                if self._hooks is None:
                    self._bind(grads, n, bs)
                assert self._hooks is not None
                if self.shuffle:   # as sklearn.utils.shuffle of the previous epoch's order
                    order = order[rng.permutation(n)]
                if sw is None:
                    # the full batches, then the shorter last one with its own penalty scale
                    done = program.train_steps(X, Y, order, 0, n_full, bs, self._loss_kind,
                                               None, self._hooks, losses)
                    if n_full < n and done == n_full // bs:
                        done += program.train_steps(X, Y, order, n_full, n, bs,
                                                    self._loss_kind, None,
                                                    self._tail_hooks, losses[done:])
                else:
                    done = self._weighted_epoch(X, Y, sw, order, bs, losses, opt_grads)
                vals = losses[:done]
                if done < len(losses) or not np.all(np.isfinite(vals)):
                    raise ValueError("Solver produced non-finite parameter weights. The "
                                     "input data may contain large values and need to be "
                                     "preprocessed.")
                # scikit-learn's epoch loss: batch losses (with their penalty, here at the
                # epoch's end weights) weighted by batch rows
                denoms = sizes if sw is None else self._batch_weight_sums(sw, order, bs)
                pen = 0.5 * float(self.alpha) * self._penalty() / np.where(denoms > 0, denoms,
                                                                              np.inf)
                data = vals * scale if sw is None else vals
                self.loss_ = float(np.dot(data + pen, sizes) / n)
                self.n_iter_ += 1
                self.t_ += n
                self.loss_curve_.append(self.loss_)
                if self.verbose:
                    print("Iteration %d, loss = %.8f" % (self.n_iter_, self.loss_))
                if early_stopping:
                    assert Xv is not None
                    score = float(self.score(Xv, yv, sample_weight=sw_val))
                    assert self.validation_scores_ is not None
                    self.validation_scores_.append(score)
                    if self.verbose:
                        print("Validation score: %f" % score)
                self._update_no_improvement_count(early_stopping)
                if self.solver == "sgd" and self.learning_rate == "invscaling":
                    self._lr = float(self.learning_rate_init) / (self.t_ + 1) ** self.power_t
                    self._set_lr(self._lr)
                if self._no_improvement_count > self.n_iter_no_change:
                    if early_stopping:
                        msg = ("Validation score did not improve more than tol=%f for %d "
                               "consecutive epochs." % (self.tol, self.n_iter_no_change))
                    else:
                        msg = ("Training loss did not improve more than tol=%f for %d "
                               "consecutive epochs." % (self.tol, self.n_iter_no_change))
                    if self.solver == "sgd" and self.learning_rate == "adaptive":
                        if self._lr > 1e-6:
                            self._lr /= 5.0
                            self._set_lr(self._lr)
                            if self.verbose:
                                print(msg + " Setting learning rate to %f" % self._lr)
                            self._no_improvement_count = 0
                            continue
                        if self.verbose:
                            print(msg + " Learning rate too small. Stopping.")
                        break
                    if self.verbose:
                        print(msg + " Stopping.")
                    break
                if incremental:
                    break
                if self.n_iter_ == self.max_iter:
                    warnings.warn("Stochastic Optimizer: Maximum iterations (%d) reached and "
                                  "the optimization hasn't converged yet." % self.max_iter,
                                  ConvergenceWarning, stacklevel=3)
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.", stacklevel=3)
        if early_stopping and getattr(self, "_best", None) is not None:
            for lin, (W, b) in zip(self._lins, self._best):
                lin.W, lin.b = W, b

    @staticmethod
    def _batch_weight_sums(sw: np.ndarray, order: np.ndarray, bs: int) -> np.ndarray:
        n = len(order)
        return np.array([sw[order[sl]].sum() for sl in gen_batches(n, bs)])

    def _weighted_epoch(self, X: np.ndarray, Y: np.ndarray, sw: np.ndarray, order: np.ndarray,
                        bs: int, losses: np.ndarray, grads: list[np.ndarray]) -> int:
        """An epoch with sample weights, step by step in Python (the fused loop has no
        row weights): each batch's weighted loss and gradient, the penalty
        alpha / (2 sum(w_batch)) |W|^2, and the optimizer's step. Returns the steps."""
        s = self._grad_scale()
        wd = float(self._optimizer.param_groups[0]["weight_decay"])
        n_w = len(self._lins)
        k = 0
        for k, sl in enumerate(gen_batches(len(order), bs)):
            idx = order[sl]
            wb = sw[idx]
            swb = float(wb.sum())
            if swb <= 0:           # only rows of weight 0: nothing to learn from
                losses[k] = 0.0
                continue
            value = self._weighted_backprop(X[idx], Y[idx], wb)
            losses[k] = value
            if not np.isfinite(value):
                return k + 1
            for j, g in enumerate(grads):
                g *= g.dtype.type(1.0 / s)
                if j < n_w:   # the optimizer adds wd W; the penalty of this batch's weights
                    g += g.dtype.type(float(self.alpha) / (swb * s) - wd) * self._lins[j].W
            self._optimizer.step(grads)
        return k + 1

    def _update_no_improvement_count(self, early_stopping: bool) -> None:
        if early_stopping:
            assert self.validation_scores_ is not None
            last = self.validation_scores_[-1]
            best = self.best_validation_score_
            assert best is not None
            if last < best + self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if last > best:
                self.best_validation_score_ = last
                self._best = [(np.array(lin.W), np.array(lin.b)) for lin in self._lins]
        else:
            best_loss = self.best_loss_
            assert best_loss is not None
            if self.loss_curve_[-1] > best_loss - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if self.loss_curve_[-1] < best_loss:
                self.best_loss_ = self.loss_curve_[-1]

    def _fit_lbfgs(self, X: np.ndarray, Y: np.ndarray, sample_weight: Any) -> None:
        program = self._model.program
        assert program is not None
        X = np.ascontiguousarray(X)
        Y = np.ascontiguousarray(Y)
        params = self._model.parameters()
        grads = self._model.gradients()
        shapes = [p.shape for p in params]
        sizes = [p.size for p in params]
        bounds = np.cumsum([0] + sizes)
        n = X.shape[0]
        order = np.arange(n, dtype=np.intp)
        scale = self._data_loss_scale()
        alpha = float(self.alpha)
        is_weight = [isinstance(i, int) and i % 2 == 0 for i in range(len(params))]
        gscale = self._grad_scale()
        sw = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        if sw is None and self._loss_kind == "poisson":   # (no native Poisson loss)
            sw = np.ones(n)
        denom = n if sw is None else float(np.sum(sw))
        dtype = X.dtype
        packed = np.empty(int(bounds[-1]), dtype=np.float64)

        def unpack(theta: np.ndarray) -> None:
            for k, p in enumerate(params):
                p[...] = theta[bounds[k]:bounds[k + 1]].reshape(shapes[k])

        def loss_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
            unpack(theta)
            if sw is None:
                value = program.train_batch(X, Y, order, 0, n, self._loss_kind) * scale
                for k, g in enumerate(grads):
                    packed[bounds[k]:bounds[k + 1]] = g.ravel()
                packed[:] *= gscale
            else:
                value = self._weighted_backprop(X, Y, sw)
                for k, g in enumerate(grads):
                    packed[bounds[k]:bounds[k + 1]] = g.ravel()
            pen = 0.0
            for k, p in enumerate(params):
                if is_weight[k]:
                    pen += float(np.dot(p.ravel(), p.ravel()))
                    packed[bounds[k]:bounds[k + 1]] += (alpha / denom) * p.ravel()
            value += 0.5 * alpha * pen / denom
            return float(value), packed.copy()

        theta0 = np.concatenate([p.ravel() for p in params]).astype(np.float64)
        opt = scipy.optimize.minimize(
            loss_grad, theta0, method="L-BFGS-B", jac=True,
            options={"maxfun": self.max_fun, "maxiter": self.max_iter, "gtol": self.tol})
        self.n_iter_ = _check_optimize_result("lbfgs", opt, self.max_iter)
        self.loss_ = float(opt.fun)
        unpack(opt.x.astype(dtype, copy=False))

    def _weighted_backprop(self, X: np.ndarray, Y: np.ndarray, w: np.ndarray) -> float:
        """scikit-learn's weighted data loss of a batch, sum(w_i loss_i) / sum(w), through
        the layers' own forward/backward (the rows scaled in the output gradient); the
        gradients are left in the model's gradient arrays."""
        n = X.shape[0]
        z = self._model.forward(X)
        wn = (w / w.sum()).astype(z.dtype)
        # the output delta is p - y for every loss, as scikit-learn's (`_grad_scale`)
        if self._loss_kind == "mse":
            g = z - Y
            per = 0.5 * (g.astype(np.float64) ** 2).mean(axis=1)
        elif self._loss_kind == "poisson":
            # half the Poisson deviance of p = exp(z): y log(y / p) - y + p, summed over
            # the outputs (scikit-learn's poisson_loss)
            z64 = z.astype(np.float64)
            Y64 = Y.astype(np.float64)
            p = np.exp(z64)
            per = (scipy.special.xlogy(Y64, Y64) - Y64 * z64 - Y64 + p).sum(axis=1)
            g = (p - Y64).astype(z.dtype)
        elif self._loss_kind == "bce_with_logits":
            z64 = z.astype(np.float64)
            per = (np.maximum(z64, 0) - z64 * Y + np.log1p(np.exp(-np.abs(z64)))).sum(axis=1)
            g = _logistic(z) - Y
        else:
            p = _softmax(z.astype(np.float64))
            per = -np.log(np.clip(p[np.arange(n), Y], np.finfo(np.float64).tiny, None))
            p[np.arange(n), Y] -= 1
            g = p.astype(z.dtype)
        value = float(np.dot(per, wn))
        self._model.backward(np.ascontiguousarray(g * wn[:, None], dtype=z.dtype))
        return value

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> Any:
        """Fit the model to ``X`` and ``y`` (scikit-learn's `fit`).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array-like of shape (n_samples,), optional
            Weights of the rows in the mean loss and the penalty's scale, as scikit-learn's
            (every solver; the stochastic ones then take their steps from Python, each
            batch's weighted gradient through the layers' forward and backward).

        Returns
        -------
        self
        """
        self._validate_params()
        self._validate_solver()
        return self._fit(X, y, sample_weight, incremental=False)

    def _validate_solver(self) -> None:
        if not _solver_ok(self.solver):
            raise InvalidParameterError(
                f"The 'solver' parameter of {type(self).__name__} must be a str among "
                f"{{'lbfgs', 'sgd', 'adam'}} or a fastgd.optim optimizer name "
                f"({', '.join(sorted(_optim_pkg.ALGORITHMS))}). Got {self.solver!r} "
                "instead.")

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        return tags


def _stochastic(est: Any) -> bool:
    if est.solver == "lbfgs":
        raise AttributeError("partial_fit is only available for stochastic optimizers. "
                             "lbfgs is not stochastic.")
    return True


def _check_optimize_result(solver: str, result: Any, max_iter: int) -> int:
    if result.status != 0:
        msg = result.message
        if isinstance(msg, bytes):
            msg = msg.decode("latin1")
        warnings.warn("%s failed to converge after %d iteration(s) (status=%d):\n%s\n"
                      % (solver, result.nit, result.status, msg), ConvergenceWarning,
                      stacklevel=4)
    return int(min(result.nit, max_iter))


class MLPClassifier(ClassifierMixin, _BaseMLP):
    r"""Multi-layer perceptron classifier: `sklearn.neural_network.MLPClassifier`'s
    parameters, defaults, attributes and methods, trained on fastgd's native path (the
    network compiled into one program, each epoch one C call with the optimizer fused in).

    Binary and multilabel targets get a logistic output and the summed binary log-loss,
    multiclass targets a softmax and the log-loss. SGD and L-BFGS train the same weights
    as scikit-learn's estimator up to rounding (same initialisation, shuffling, batches,
    penalty and schedules).

    Parameters
    ----------
    hidden_layer_sizes : array-like of int, default (100,)
        The sizes of the hidden layers (each >= 1).
    activation : {"identity", "logistic", "tanh", "relu"}, default "relu"
        The hidden layers' activation.
    solver : {"adam", "sgd", "lbfgs"} or a `fastgd.optim.ALGORITHMS` name, default "adam"
        "adam" and "sgd" are scikit-learn's (``beta_1``, ``beta_2``, ``epsilon``;
        ``momentum``, ``nesterovs_momentum``); "lbfgs" is scipy's L-BFGS-B over the full
        batch (``max_iter`` iterations, ``max_fun`` evaluations). Another name ("rmsprop",
        "adamw", "nadam", ...) trains with that fastgd optimizer, its defaults, ``lr`` from
        ``learning_rate_init`` and the penalty as its ``weight_decay``.
    alpha : float, default 0.0001
        The L2 penalty :math:`\frac{\alpha}{2m}\sum_l\lVert W_l\rVert_F^2` of a batch of
        :math:`m` rows (of their weights' sum with ``sample_weight``), on the weights only.
    batch_size : int or "auto", default "auto"
        Rows per step of the stochastic solvers; "auto" is ``min(200, n_samples)``.
    learning_rate : {"constant", "invscaling", "adaptive"}, default "constant"
        The schedule of "sgd": constant; ``learning_rate_init / (t_ + 1) ** power_t`` after
        every epoch; divided by 5 when ``n_iter_no_change`` epochs gain less than ``tol``.
    learning_rate_init : float, default 0.001
    power_t : float, default 0.5
    max_iter : int, default 200
        Epochs of the stochastic solvers, iterations of L-BFGS.
    shuffle : bool, default True
        Shuffle the rows every epoch (the previous epoch's order, as scikit-learn).
    random_state : None, int or numpy.random.RandomState
        The initialisation (Glorot uniform, scikit-learn's draws), the shuffling and the
        validation split; drawn from again on every call of ``fit`` and ``partial_fit``.
    tol : float, default 1e-4
    verbose : bool, default False
        Print "Iteration N, loss = ..." after every epoch.
    warm_start : bool, default False
        ``fit`` starts from the current weights (with a new optimizer, as scikit-learn).
    momentum : float, default 0.9
    nesterovs_momentum : bool, default True
    early_stopping : bool, default False
        Hold out ``validation_fraction`` of the rows (stratified for a classifier with one
        label per row), stop when its score has not gained ``tol`` for
        ``n_iter_no_change`` epochs, and keep the best weights.
    validation_fraction : float, default 0.1
    beta_1, beta_2, epsilon : float, default 0.9, 0.999, 1e-8
        Adam's. (fastgd adds ``epsilon`` to :math:`\sqrt{\hat v}` after the bias
        correction, as torch; scikit-learn before it: the steps differ where a gradient is
        as small as ``epsilon``.)
    n_iter_no_change : int, default 10
    max_fun : int, default 15000
        The most loss evaluations of L-BFGS.

    Attributes
    ----------
    classes_ : ndarray
        The class labels (of each output for multilabel targets).
    loss_ : float
        The loss (with the penalty) after the last epoch or at the L-BFGS solution.
    best_loss_, loss_curve_, validation_scores_, best_validation_score_
        As scikit-learn's (the stochastic solvers only). The epoch loss adds the penalty at
        the epoch's end weights (scikit-learn: at each batch's).
    coefs_, intercepts_ : list of ndarray
        The weights, shapes ``(n_in, n_out)`` and ``(n_out,)``, in the dtype of the training
        data: float32 stays float32, other input becomes float64.
    n_iter_ : int
        The epochs (iterations) of the last call.
    t_ : int
        Rows seen by the stochastic solvers over all calls.
    n_layers_, n_outputs_ : int
    out_activation_ : str
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        The column names of a DataFrame ``X``.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from fastgd.sklearn import MLPClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = MLPClassifier((64,), max_iter=20, random_state=0).fit(X / 16, y)
    >>> clf.score(X / 16, y) > 0.9
    True
    """

    def _out_activation(self) -> str:
        return "softmax" if self._loss_kind == "cross_entropy" else "logistic"

    def _targets(self, y: np.ndarray, incremental: bool, classes: Any = None) -> np.ndarray:
        from sklearn.utils.multiclass import check_classification_targets
        check_classification_targets(y)
        if not incremental:
            if classes is not None:
                classes_ = unique_labels(np.asarray(classes))
            else:
                classes_ = None
            self._label_binarizer = LabelBinarizer()
            if classes_ is not None:
                self._label_binarizer.fit(classes_)
            else:
                self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes_ = self.classes_
            kind = type_of_target(y)
            if kind == "multilabel-indicator" or self._label_binarizer.y_type_ == \
                    "multilabel-indicator":
                if self._label_binarizer.y_type_ != kind:
                    raise ValueError("`y` has different type than the previous call.")
            elif self.warm_start:
                if set(unique_labels(y)) != set(self.classes_):
                    raise ValueError(
                        "warm_start can only be used where `y` has the same classes as in "
                        f"the previous call to fit. Previously got {self.classes_}, `y` has "
                        f"{unique_labels(y)}")
            elif not np.isin(unique_labels(y), self.classes_).all():
                raise ValueError("`y` has classes not in `self.classes_`. `self.classes_` "
                                 "has %s. 'y' has %s." % (self.classes_, unique_labels(y)))
        ytype = self._label_binarizer.y_type_
        if ytype == "multiclass":
            self._loss_kind = "cross_entropy"
            return np.searchsorted(self.classes_, y).astype(np.int64)
        self._loss_kind = "bce_with_logits"
        return np.asarray(self._label_binarizer.transform(y))

    def _check_input(self, X: Any, y: Any, incremental: bool, reset: bool) -> tuple[Any, Any]:
        X, y = validate_data(self, X, y, accept_sparse=False, multi_output=True,
                             dtype=(np.float64, np.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        return X, y

    @available_if(_stochastic)
    def partial_fit(self, X: Any, y: Any, classes: Any = None,
                    sample_weight: Any = None) -> MLPClassifier:
        """One epoch over ``X`` and ``y``; ``classes`` (all labels) is required on the first
        call."""
        if not hasattr(self, "coefs_"):
            self._validate_params()
            self._validate_solver()
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit.")
        if self.solver == "lbfgs":
            raise AttributeError("partial_fit is only available for stochastic optimizers. "
                                 "lbfgs is not stochastic.")
        self._fit(X, y, sample_weight, incremental=True, classes=classes)
        return self

    def _predict_raw(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse=False, reset=False,
                          dtype=(np.float64, np.float32))
        if X.dtype != self.coefs_[0].dtype:
            X = X.astype(self.coefs_[0].dtype)
        return self._forward_out(X)

    def predict(self, X: Any) -> np.ndarray:
        """Class labels of ``X``."""
        p = self._predict_raw(X)
        if self.n_outputs_ == 1:
            p = p.ravel()
        out: np.ndarray = self._label_binarizer.inverse_transform(p)
        return out

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities of ``X``, shape (n_samples, n_classes)."""
        p = self._predict_raw(X)
        if self.n_outputs_ == 1:
            p = p.ravel()
        if p.ndim == 1:
            return np.vstack([1 - p, p]).T
        return p

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """The mean accuracy on ``X`` and ``y`` (`sklearn.base.ClassifierMixin.score`;
        subset accuracy for multilabel targets)."""
        return float(ClassifierMixin.score(self, X, y, sample_weight=sample_weight))

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """Logarithm of `predict_proba`."""
        out: np.ndarray = np.log(self.predict_proba(X))
        return out

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    r"""Multi-layer perceptron regressor: `sklearn.neural_network.MLPRegressor`'s
    parameters, defaults, attributes and methods, trained on fastgd's native path.

    Parameters
    ----------
    loss : {"squared_error", "poisson"}, default "squared_error"
        Half the mean squared error with an identity output (the native fused loss), or
        half the Poisson deviance with an exponential output (y >= 0; its gradient is
        computed in Python each batch through the layers' own forward and backward, with
        the same optimizers: slower). As scikit-learn's, the output delta is
        :math:`\hat y - y` per row, so with k outputs the steps follow k times the gradient
        of the mean squared error it reports.
    hidden_layer_sizes : array-like of int, default (100,)
        The sizes of the hidden layers (each >= 1).
    activation : {"identity", "logistic", "tanh", "relu"}, default "relu"
        The hidden layers' activation.
    solver : {"adam", "sgd", "lbfgs"} or a `fastgd.optim.ALGORITHMS` name, default "adam"
        "adam" and "sgd" are scikit-learn's (``beta_1``, ``beta_2``, ``epsilon``;
        ``momentum``, ``nesterovs_momentum``); "lbfgs" is scipy's L-BFGS-B over the full
        batch (``max_iter`` iterations, ``max_fun`` evaluations). Another name ("rmsprop",
        "adamw", "nadam", ...) trains with that fastgd optimizer, its defaults, ``lr`` from
        ``learning_rate_init`` and the penalty as its ``weight_decay``.
    alpha : float, default 0.0001
        The L2 penalty :math:`\frac{\alpha}{2m}\sum_l\lVert W_l\rVert_F^2` of a batch of
        :math:`m` rows (of their weights' sum with ``sample_weight``), on the weights only.
    batch_size : int or "auto", default "auto"
        Rows per step of the stochastic solvers; "auto" is ``min(200, n_samples)``.
    learning_rate : {"constant", "invscaling", "adaptive"}, default "constant"
        The schedule of "sgd": constant; ``learning_rate_init / (t_ + 1) ** power_t`` after
        every epoch; divided by 5 when ``n_iter_no_change`` epochs gain less than ``tol``.
    learning_rate_init : float, default 0.001
    power_t : float, default 0.5
    max_iter : int, default 200
        Epochs of the stochastic solvers, iterations of L-BFGS.
    shuffle : bool, default True
        Shuffle the rows every epoch (the previous epoch's order, as scikit-learn).
    random_state : None, int or numpy.random.RandomState
        The initialisation (Glorot uniform, scikit-learn's draws), the shuffling and the
        validation split; drawn from again on every call of ``fit`` and ``partial_fit``.
    tol : float, default 1e-4
    verbose : bool, default False
        Print "Iteration N, loss = ..." after every epoch.
    warm_start : bool, default False
        ``fit`` starts from the current weights (with a new optimizer, as scikit-learn).
    momentum : float, default 0.9
    nesterovs_momentum : bool, default True
    early_stopping : bool, default False
        Hold out ``validation_fraction`` of the rows (stratified for a classifier with one
        label per row), stop when its score has not gained ``tol`` for
        ``n_iter_no_change`` epochs, and keep the best weights.
    validation_fraction : float, default 0.1
    beta_1, beta_2, epsilon : float, default 0.9, 0.999, 1e-8
        Adam's. (fastgd adds ``epsilon`` to :math:`\sqrt{\hat v}` after the bias
        correction, as torch; scikit-learn before it: the steps differ where a gradient is
        as small as ``epsilon``.)
    n_iter_no_change : int, default 10
    max_fun : int, default 15000
        The most loss evaluations of L-BFGS.

    Attributes
    ----------
    loss_ : float
        The loss (with the penalty) after the last epoch or at the L-BFGS solution.
    best_loss_, loss_curve_, validation_scores_, best_validation_score_
        As scikit-learn's (the stochastic solvers only). The epoch loss adds the penalty at
        the epoch's end weights (scikit-learn: at each batch's).
    coefs_, intercepts_ : list of ndarray
        The weights, shapes ``(n_in, n_out)`` and ``(n_out,)``, in the dtype of the training
        data: float32 stays float32, other input becomes float64.
    n_iter_ : int
        The epochs (iterations) of the last call.
    t_ : int
        Rows seen by the stochastic solvers over all calls.
    n_layers_, n_outputs_ : int
    out_activation_ : str
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        The column names of a DataFrame ``X``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastgd.sklearn import MLPRegressor
    >>> X = np.linspace(-1, 1, 200)[:, None]; y = X.ravel() ** 2
    >>> reg = MLPRegressor(hidden_layer_sizes=(32,), solver="lbfgs", random_state=0).fit(X, y)
    >>> reg.score(X, y) > 0.95
    True
    """

    _parameter_constraints: dict[str, list[Any]] = {
        **_BaseMLP._parameter_constraints,
        "loss": [StrOptions({"squared_error", "poisson"})],
    }

    def __init__(self, loss: str = "squared_error", hidden_layer_sizes: Any = (100,),
                 activation: str = "relu", *, solver: str = "adam", alpha: float = 0.0001,
                 batch_size: Any = "auto", learning_rate: str = "constant",
                 learning_rate_init: float = 0.001, power_t: float = 0.5, max_iter: int = 200,
                 shuffle: bool = True, random_state: Any = None, tol: float = 1e-4,
                 verbose: bool = False, warm_start: bool = False, momentum: float = 0.9,
                 nesterovs_momentum: bool = True, early_stopping: bool = False,
                 validation_fraction: float = 0.1, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-8, n_iter_no_change: int = 10,
                 max_fun: int = 15000) -> None:
        super().__init__(
            hidden_layer_sizes, activation, solver=solver, alpha=alpha,
            batch_size=batch_size, learning_rate=learning_rate,
            learning_rate_init=learning_rate_init, power_t=power_t, max_iter=max_iter,
            shuffle=shuffle, random_state=random_state, tol=tol, verbose=verbose,
            warm_start=warm_start, momentum=momentum, nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping, validation_fraction=validation_fraction,
            beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, n_iter_no_change=n_iter_no_change,
            max_fun=max_fun)
        self.loss = loss

    @property
    def _loss_kind(self) -> str:  # type: ignore[override]
        return "poisson" if self.loss == "poisson" else "mse"

    def _out_activation(self) -> str:
        return "exp" if self.loss == "poisson" else "identity"

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.positive_only = self.loss == "poisson"
        return tags

    def _targets(self, y: np.ndarray, incremental: bool, classes: Any = None) -> np.ndarray:
        Y = y.reshape(-1, 1) if y.ndim == 1 else y
        if self.loss == "poisson" and np.any(Y < 0):
            raise ValueError("Some value(s) of y are negative which is not allowed for "
                             "loss='poisson'.")
        return np.asarray(Y)

    @available_if(_stochastic)
    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPRegressor:
        """One epoch over ``X`` and ``y``."""
        if not hasattr(self, "coefs_"):
            self._validate_params()
            self._validate_solver()
        if self.solver == "lbfgs":
            raise AttributeError("partial_fit is only available for stochastic optimizers. "
                                 "lbfgs is not stochastic.")
        self._fit(X, y, sample_weight, incremental=True)
        return self

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """:math:`R^2` of the predictions (`sklearn.base.RegressorMixin.score`)."""
        return float(RegressorMixin.score(self, X, y, sample_weight=sample_weight))

    def predict(self, X: Any) -> np.ndarray:
        """Predictions for ``X``: shape (n_samples,) or (n_samples, n_outputs)."""
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse=False, reset=False,
                          dtype=(np.float64, np.float32))
        if X.dtype != self.coefs_[0].dtype:
            X = X.astype(self.coefs_[0].dtype)
        z = self._forward_out(X)
        if z.shape[1] == 1:
            return z.ravel()
        return z
