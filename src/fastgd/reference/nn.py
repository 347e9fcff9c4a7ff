"""Layers and losses in numpy: each forward with its backward beside it (the chain rule).

The native kernels (csrc/kernels/nn_impl.h, BLAS through csrc/_nn.pyx) compute the same
quantities; the tests hold them to these functions. Shapes: x (n, in), W (in, out), b (out,).
"""
import numpy as np

from .._typing import Array, FloatArray


# ------------------------------------------------------------------ Linear: z = x W + b
def linear_forward(x: FloatArray, W: FloatArray, b: FloatArray | None) -> FloatArray:
    """z = x W + b (no bias when ``b`` is None)."""
    z = x @ W
    if b is not None:
        z += b
    return z


def linear_backward(x: FloatArray, W: FloatArray,
                    dz: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Gradients of a loss through z = x W + b: (dW, db, dx)."""
    return x.T @ dz, dz.sum(axis=0), dz @ W.T


# ------------------------------------------------------------------ activations
def relu(z: FloatArray) -> FloatArray:
    """max(z, 0)."""
    return np.maximum(z, 0)


def relu_backward(a: FloatArray, da: FloatArray) -> FloatArray:
    """da where the output ``a`` is positive, else 0."""
    return np.where(a > 0, da, 0).astype(da.dtype, copy=False)


def leaky_relu(z: FloatArray, slope: float) -> FloatArray:
    """z where z > 0, else ``slope * z``."""
    return np.where(z > 0, z, z * z.dtype.type(slope))


def leaky_relu_backward(z: FloatArray, da: FloatArray, slope: float) -> FloatArray:
    """da where z > 0, else ``slope * da``."""
    return np.where(z > 0, da, da * da.dtype.type(slope))


def sigmoid(z: FloatArray) -> FloatArray:
    """1 / (1 + exp(-z)), through ``exp(-|z|)`` so that it never overflows."""
    e = np.exp(-np.abs(z))  # never overflows
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e)).astype(z.dtype, copy=False)


def sigmoid_backward(a: FloatArray, da: FloatArray) -> FloatArray:
    """da * a (1 - a), from the output ``a``."""
    return da * (a * (1 - a))


def tanh(z: FloatArray) -> FloatArray:
    """tanh(z)."""
    return np.tanh(z)


def tanh_backward(a: FloatArray, da: FloatArray) -> FloatArray:
    """da * (1 - a^2), from the output ``a``."""
    return da * (1 - a * a)


def softmax(z: FloatArray) -> FloatArray:
    """exp(z) / sum(exp(z)) over the last axis, max-shifted."""
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def softmax_backward(y: FloatArray, dy: FloatArray) -> FloatArray:
    """y * (dy - <dy, y>) over the last axis, from the output ``y``."""
    return y * (dy - (dy * y).sum(axis=-1, keepdims=True))


# ------------------------------------------------------------------ losses (mean reduction)
def cross_entropy(logits: FloatArray, labels: Array) -> tuple[float, FloatArray]:
    """Mean of logsumexp(z) - z[label] over rows, and its gradient (softmax - onehot) / n."""
    n = logits.shape[0]
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    s = e.sum(axis=1, keepdims=True)
    loss = float(np.mean(np.log(s[:, 0].astype(np.float64))
                         - shifted[np.arange(n), labels].astype(np.float64)))
    grad = e / s
    grad[np.arange(n), labels] -= 1
    return loss, grad / logits.dtype.type(n)


def mse(pred: FloatArray, target: FloatArray) -> tuple[float, FloatArray]:
    """Mean of (pred - target)^2 over all elements, and its gradient 2 (pred - target) / N."""
    d = pred - target
    return float(np.mean(d.astype(np.float64) ** 2)), d * pred.dtype.type(2.0 / d.size)


def bce_with_logits(x: FloatArray, target: FloatArray) -> tuple[float, FloatArray]:
    """Mean binary cross-entropy of sigmoid(x) against target, computed from the logits."""
    x64, t64 = x.astype(np.float64), target.astype(np.float64)
    loss = float(np.mean(np.maximum(x64, 0) - x64 * t64 + np.log1p(np.exp(-np.abs(x64)))))
    return loss, (sigmoid(x) - target) / x.dtype.type(x.size)
