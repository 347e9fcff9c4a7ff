"""A chain of layers, compiled to one native program when every layer is native."""
from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, Sequence, cast

import numpy as np

from .. import _checks, _nn
from .._typing import DTypeLike, FloatArray
from . import init as _init
from .activations import (HIDDEN_ACTIVATIONS, Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh,
                          _Activation)
from .linear import Linear
from .module import Module, check_input, stateless_forward

if TYPE_CHECKING:
    from ..optim.optimizer import Optimizer
    from .serialization import PathArg

_FUSABLE = (Identity, ReLU, LeakyReLU, Sigmoid, Tanh)


class Sequential(Module):
    r"""Layers applied in order; ``backward`` applies the chain rule from the last to the first.

    .. math::
        h_0 = x,\quad h_k = f_k(h_{k-1}),\qquad
        \frac{\partial L}{\partial h_{k-1}} = \frac{\partial L}{\partial h_k}
            \frac{\partial h_k}{\partial h_{k-1}}

    When every layer uses the native backend, the model is compiled once into a program that
    runs all layers in C without returning to Python: each Linear is one BLAS product with the
    bias and the following activation fused into its epilogue (and the activation's gradient
    into its backward), over buffers reused from batch to batch.

    Parameters
    ----------
    *layers : Module
        ``Linear`` and activation layers (nested ``Sequential`` are flattened). A Linear with
        ``init="auto"`` followed by ReLU/LeakyReLU is initialised with He, else Xavier.

    Examples
    --------
    >>> import numpy as np, fastgd
    >>> from fastgd.nn import Linear, ReLU, Sequential
    >>> model = Sequential(Linear(4, 8, seed=0), ReLU(), Linear(8, 3, seed=1))
    >>> model.forward(np.ones((5, 4), np.float32)).shape
    (5, 3)
    >>> [p.shape for p in model.parameters()]
    [(4, 8), (8,), (8, 3), (3,)]
    """

    def __init__(self, *layers: Module) -> None:
        flat: list[Module] = []
        for i, layer in enumerate(layers):
            if isinstance(layer, Sequential):
                flat.extend(layer.layers)
            elif isinstance(layer, Module):
                flat.append(layer)
            else:
                hint = ("; pass the layers as separate arguments, Sequential(*layers)"
                        if isinstance(layer, (list, tuple)) else "")
                raise TypeError(f"layers[{i}] must be a fastgd.nn layer, got "
                                f"{type(layer).__name__}{hint}")
        if not flat:
            raise ValueError("layers is empty: Sequential needs at least one layer")
        backends = {layer.backend for layer in flat}
        super().__init__("native" if backends == {"native"} else "reference")
        self.layers: list[Module] = flat
        linears = [layer for layer in flat if isinstance(layer, Linear)]
        dtypes = {layer.dtype for layer in linears}
        if len(dtypes) > 1:
            raise ValueError(f"all Linear layers must share one dtype, got {sorted(d.name for d in dtypes)}")
        self.dtype: np.dtype[Any] | None = dtypes.pop() if dtypes else None
        width: int | None = None
        for i, layer in enumerate(flat):
            if isinstance(layer, Linear):
                if width is not None and layer.in_features != width:
                    raise ValueError(f"layers[{i}] takes {layer.in_features} features but the "
                                     f"layer before gives {width}")
                width = layer.out_features
        # the ops refer to the layers' arrays (a layer that cannot be compiled raises here)
        ops = self._ops() if self.backend == "native" and linears else None
        # only once every check has passed: no layer is re-initialised by a refused call
        for i, layer in enumerate(flat):
            if isinstance(layer, Linear) and layer.init == "auto":
                nxt = flat[i + 1] if i + 1 < len(flat) else None
                layer.reset_parameters(_init.for_activation(type(nxt).__name__))
        self._program: _nn.Program | None = None if ops is None else _nn.Program(ops, self.dtype)
        self._infer: _nn.Program | None = None

    def __deepcopy__(self, memo: dict[int, Any]) -> Sequential:
        """``copy.deepcopy(model)``: copies of the layers (their parameters included) and a
        program of its own over them (a compiled program cannot be copied)."""
        cls = type(self)
        new = cls.__new__(cls)
        memo[id(self)] = new
        for key, value in self.__dict__.items():
            if key not in ("_program", "_infer"):
                new.__dict__[key] = copy.deepcopy(value, memo)
        new._program = None if self._program is None else _nn.Program(new._ops(), new.dtype)
        new._infer = None
        return new

    def _ops(self) -> list[tuple[Any, ...]]:
        """The layer list as Program ops, fusing each Linear with the activation after it."""
        ops: list[tuple[Any, ...]] = []
        i, width = 0, self._first_width()
        while i < len(self.layers):
            layer = self.layers[i]
            if isinstance(layer, Linear):
                act, slope = "identity", 0.0
                nxt = self.layers[i + 1] if i + 1 < len(self.layers) else None
                if isinstance(nxt, _FUSABLE):
                    act, slope = nxt.kind, nxt.slope
                    i += 1
                ops.append(("linear", layer.W, layer.b, layer.dW, layer.db, act, slope))
                width = layer.out_features
            elif isinstance(layer, Softmax):
                ops.append(("softmax", width))
            elif isinstance(layer, _Activation):
                ops.append(("act", layer.kind, layer.slope, width))
            else:
                raise TypeError(f"{type(layer).__name__} cannot be compiled into a native model")
            i += 1
        return ops

    def _first_width(self) -> int | None:
        return next((layer.in_features for layer in self.layers if isinstance(layer, Linear)),
                    None)

    @property
    def in_features(self) -> int | None:
        """Features the model takes (None when it has no Linear layer: any width)."""
        return self._first_width()

    @property
    def out_features(self) -> int | None:
        """Features the model gives (None when it has no Linear layer: its input width)."""
        widths = [layer.out_features for layer in self.layers if isinstance(layer, Linear)]
        return widths[-1] if widths else None

    @property
    def program(self) -> _nn.Program | None:
        """The compiled program (``fastgd._nn.Program``) that runs this native model's
        forward, backward and training steps as single C calls, or None (reference
        backend, or a model it cannot compile). `fastgd.fit` trains through it."""
        return self._program

    def forward(self, x: FloatArray) -> FloatArray:
        """The model's output for a batch ``x`` of shape (n, in_features)."""
        if self._program is not None:
            x = check_input(x, dtype=self.dtype, ndim=2, features=self.in_features)
            return self._program.forward(x)
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, grad_output: FloatArray) -> FloatArray:
        """Backpropagate d loss / d output of the last ``forward``; returns d loss / d input
        and overwrites every layer's parameter gradients."""
        if self._program is not None:
            g = check_input(grad_output, "grad_output", dtype=self.dtype, ndim=2)
            # with input_grad (the default) the program returns d loss / d input, never None
            return cast(FloatArray, self._program.backward(g))
        for layer in reversed(self.layers):
            grad_output = layer.backward(grad_output)
        return grad_output

    def predict(self, X: FloatArray, batch_size: int = 1024) -> FloatArray:
        """The outputs for all rows of ``X``, computed in batches (no backward state kept)."""
        X = check_input(X, "X", dtype=self.dtype, ndim=2, features=self.in_features)
        batch_size = _checks.integer(batch_size, "batch_size", low=1)
        if self.out_features is None:
            return super().predict(X, batch_size)
        out = np.empty((X.shape[0], self.out_features), self.dtype)
        if self._program is not None and self._infer is None:
            # a second program over the same parameters: predicting never disturbs the
            # buffers a pending backward() needs
            self._infer = _nn.Program(self._ops(), self.dtype)
        for s in range(0, X.shape[0], batch_size):
            xb = X[s:s + batch_size]
            if self._infer is not None:
                out[s:s + batch_size] = self._infer.forward(xb)
            else:
                for layer in self.layers:
                    xb = stateless_forward(layer, xb)
                out[s:s + batch_size] = xb
        return out

    def parameters(self) -> list[FloatArray]:
        return [p for layer in self.layers for p in layer.parameters()]

    def gradients(self) -> list[FloatArray]:
        return [g for layer in self.layers for g in layer.gradients()]

    def save(self, path: PathArg, optimizer: Optimizer | None = None, *,
             comm: Any = None) -> None:
        """Save the architecture, the parameters and optionally ``optimizer``'s state to an
        .npz file, atomically (see ``fastgd.load``).

        With ``comm`` (an mpi4py communicator, after ``fit(..., comm=comm)``; every rank
        calls ``save`` alike) the file is written once, by rank 0, and every rank returns
        when it is written or raises the same error when it could not be. The file holds
        nothing about the ranks: training resumes from it on any number of them.
        """
        from .serialization import save
        if comm is None:
            save(self, path, optimizer)
            return
        from ..train import _mpi
        _mpi.save_on_root(self, path, optimizer, _mpi.check_comm(comm))

    def __getitem__(self, i: int) -> Module:
        return self.layers[i]

    def __len__(self) -> int:
        return len(self.layers)

    def __repr__(self) -> str:
        inner = "\n".join(f"  ({i}): {layer!r}" for i, layer in enumerate(self.layers))
        return f"Sequential(\n{inner}\n)"


def MLP(sizes: Sequence[int], activation: str = "relu", *, dtype: DTypeLike = np.float32,
        seed: _init.SeedLike = None, backend: str = "native") -> Sequential:
    """A multilayer perceptron: Linear layers of the given sizes with ``activation`` between.

    Parameters
    ----------
    sizes : sequence of int
        ``[in_features, hidden..., out_features]``, each >= 1.
    activation : {"relu", "leaky_relu", "sigmoid", "tanh"}
        A name in `fastgd.nn.activations.HIDDEN_ACTIVATIONS`.
    dtype : float32 or float64, default float32
    seed : None, int >= 0, numpy.random.Generator or numpy.random.SeedSequence, optional
        Seeds every layer's initialisation (one child seed, or child generator, per layer).
    backend : {"native", "reference"}, default "native"

    Returns
    -------
    Sequential

    Raises
    ------
    TypeError, ValueError
        For an argument of the wrong type or out of range, naming it (``sizes[k]`` for an
        entry of ``sizes``).

    Examples
    --------
    >>> import fastgd
    >>> fastgd.nn.MLP([64, 128, 10], seed=0)[0]
    Linear(in_features=64, out_features=128, bias=True, dtype=float32)
    """
    _checks.choice(activation, "activation", sorted(HIDDEN_ACTIVATIONS))
    try:
        items = None if isinstance(sizes, (str, bytes, dict)) else list(sizes)
    except TypeError:  # not iterable (an int, a 0-d array, ...)
        items = None
    if items is None:
        raise TypeError(f"sizes must be a sequence of ints, got {type(sizes).__name__}")
    sizes = [_checks.integer(v, f"sizes[{k}]", low=1) for k, v in enumerate(items)]
    if len(sizes) < 2:
        raise ValueError(f"sizes needs at least an input and an output size, got {sizes}")
    dtype = _checks.float_dtype(dtype)
    seed = _checks.seed(seed)
    _checks.backend(backend)
    n = len(sizes) - 1
    if isinstance(seed, np.random.Generator):
        rngs = seed.spawn(n)
    else:
        children = (seed if isinstance(seed, np.random.SeedSequence)
                    else np.random.SeedSequence(seed)).spawn(n)
        rngs = [np.random.default_rng(c) for c in children]
    layers: list[Module] = []
    for k in range(n):
        layers.append(Linear(sizes[k], sizes[k + 1], dtype=dtype, backend=backend,
                             seed=rngs[k]))
        if k < len(sizes) - 2:
            layers.append(HIDDEN_ACTIVATIONS[activation](backend=backend))
    return Sequential(*layers)
