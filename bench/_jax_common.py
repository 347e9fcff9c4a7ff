"""JAX contenders for the "digits" neural-network benchmark (see ``_nn_common.py``).

Not a test module. Two trainers with the interface of ``_nn_common``'s (``epoch(seed,
epochs=1)``, ``steps_per_epoch``, ``params()``, ``predict(X)``, ``accuracy(X, y)``), training
the digits network exactly as `_nn_common.NumpyMLP` does, so after the same epochs from the
same `_nn_common.initial_weights` their parameters agree with numpy's to float32 rounding:

* MLP with ReLU between the layers (``jax.nn.relu``: derivative 0 at 0, as numpy's
  ``acts > 0``), float32, weights in fastgd's layout ``W`` (in, out), ``b`` (out,);
* loss: mean over the batch of the max-shifted softmax cross-entropy
  (``log sum exp(z - max z) - (z_label - max z)``), gradients by ``jax.value_and_grad``;
* Adam with PyTorch's formulas (defaults betas (0.9, 0.999), eps 1e-8):
  ``m += (1 - b1) (g - m)``, ``v = b2 v + (1 - b2) g^2``,
  ``p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)``; the step counter ``t`` is
  a traced int32 (never a compile-time constant), and ``1 - b^t`` is computed in float32 as
  ``-expm1(t log b)`` (``log b`` rounded from float64), accurate to a few ulp;
* batches drawn as ``NumpyMLP.epoch`` draws them: epoch ``e`` uses the ``e``-th order of
  ``epoch_orders(n, seed, epochs)`` cut by ``batches(n, batch_size)``, the last batch short
  when ``batch_size`` does not divide ``n`` (digits: 1347 rows = 42 x 32 + 3).

Contenders:

* `JaxJitStep` (``"jax-jit-step"``): one ``jax.jit`` function per training step (gather,
  forward, loss, gradient, Adam), called from a Python loop once per batch;
* `JaxScanEpoch` (``"jax-scan-epoch"``): one ``jax.jit`` call per epoch, ``jax.lax.scan``
  over the full batches followed, in the same compiled function, by the short last batch.

Both keep the training data, the parameters, the Adam moments, the step counter and the
epoch's running loss sum on the device (a pytree, donated to each call so XLA updates the
buffers in place), compile every shape they use in ``__init__`` (on a throw-away copy of
the state, so timings never include compilation), and block (``block_until_ready``) on the
new state before ``epoch`` returns. The epoch loss is accumulated in float32 on the device
(numpy accumulates in float64: the returned means differ by ~1e-7 relative).

Threads: XLA's CPU backend runs its operations on its own thread pool, sized to the cores
the process may use (2 on the benchmark machine); this module sets no thread variable. To
run XLA on one thread, start Python with
``XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"``.

jax is imported lazily (in `available` and in the trainers), so importing this module
never fails; ``available()`` says whether the contenders can run.
"""
import math

import numpy as np

import _nn_common as C


def available():
    """(True, "jax <version> (jaxlib <version>, <backend>)") or (False, the reason)."""
    try:
        import jax
        import jaxlib
    except ImportError:
        return False, "jax not installed: pip install jax"
    return True, f"jax {jax.__version__} (jaxlib {jaxlib.__version__}, {jax.default_backend()})"


def _functions(lr, betas, eps):
    """(step, forward): the pure functions of the model, to be jitted by the trainers.

    ``step(state, X, y, idx) -> state`` trains on the rows ``idx`` of ``(X, y)``; ``state``
    is ``(params, m, v, t, total)``: the parameters ``(W0, b0, W1, b1, ...)``, Adam's two
    moments (same structure), the int32 step counter and the float32 sum of the batch losses
    times the batch sizes. ``forward(params, X)`` returns the logits."""
    import jax
    import jax.numpy as jnp

    f32 = jnp.float32
    b1, b2 = betas
    log_b1, log_b2 = f32(math.log(b1)), f32(math.log(b2))
    lr, one_minus_b1, b2, one_minus_b2, eps = (f32(lr), f32(1 - b1), f32(b2), f32(1 - b2),
                                               f32(eps))

    def forward(params, x):
        h = x
        last = len(params) - 2
        for i in range(0, len(params), 2):
            h = h @ params[i] + params[i + 1]
            if i < last:
                h = jax.nn.relu(h)
        return h

    def loss_fn(params, x, labels):
        z = forward(params, x)
        shifted = z - jax.lax.stop_gradient(z.max(axis=1, keepdims=True))
        lse = jnp.log(jnp.exp(shifted).sum(axis=1))
        picked = jnp.take_along_axis(shifted, labels[:, None], axis=1)[:, 0]
        return jnp.mean(lse - picked)

    def step(state, X, y, idx):
        params, m, v, t, total = state
        loss, grads = jax.value_and_grad(loss_fn)(params, X[idx], y[idx])
        t = t + 1
        tf = t.astype(f32)
        step_size = lr / -jnp.expm1(tf * log_b1)          # lr / (1 - b1^t)
        bc2_sqrt = jnp.sqrt(-jnp.expm1(tf * log_b2))       # sqrt(1 - b2^t)
        m = tuple(mi + one_minus_b1 * (g - mi) for mi, g in zip(m, grads))
        v = tuple(b2 * vi + one_minus_b2 * g * g for vi, g in zip(v, grads))
        params = tuple(p - step_size * (mi / (jnp.sqrt(vi) / bc2_sqrt + eps))
                       for p, mi, vi in zip(params, m, v))
        return params, m, v, t, total + loss * f32(idx.shape[0])

    return step, forward


class _JaxTrainer(C._Trainer):
    """What both JAX trainers share: the device data and state, ``params``, ``predict``."""

    def __init__(self, X, y, batch_size, weights, lr=C.LR, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(X, y, batch_size)
        import jax

        self.jax = jax
        self.weights = [(w.copy(), b.copy()) for w, b in weights]
        self.Xd = jax.device_put(np.ascontiguousarray(X, dtype=np.float32))
        self.yd = jax.device_put(np.ascontiguousarray(y, dtype=np.int32))
        step, forward = _functions(lr, betas, eps)
        self._step_fn = step
        self._forward = jax.jit(forward)
        self.state = self._initial_state()
        self.last_loss = None

    def _initial_state(self):
        """A fresh device state from the initial weights (t = 0, zero moments)."""
        jnp = self.jax.numpy
        params = tuple(jnp.asarray(a) for pair in self.weights for a in pair)
        m = tuple(jnp.zeros_like(p) for p in params)
        v = tuple(jnp.zeros_like(p) for p in params)
        return params, m, v, jnp.zeros((), jnp.int32), jnp.zeros((), jnp.float32)

    def _reset_total(self, state):
        return state[:4] + (self.jax.numpy.zeros((), self.jax.numpy.float32),)

    def params(self):
        return [np.array(p) for p in self.state[0]]

    def predict(self, X):
        return np.asarray(self._forward(self.state[0], np.asarray(X, dtype=np.float32)))


class JaxJitStep(_JaxTrainer):
    """One ``jax.jit``-compiled training step per batch, called from a Python loop.

    The step takes the donated state, the device-resident ``X`` and ``y`` and the batch's
    int32 row indices (a slice of the epoch's order, the only per-step host-to-device
    transfer, 128 bytes) and gathers the rows inside the compiled function. Measured on the
    benchmark machine (medians of 150 interleaved epochs), this was the fastest variant:
    gathering on the host with numpy and passing the (32, 64) batch took about 10 % longer
    per step, putting the whole order on the device once per epoch and cutting the batch
    inside with ``lax.dynamic_slice`` about 3 % longer, and not donating the state about
    15 % longer. Two shapes are compiled in ``__init__``: the full batch and the short last
    one."""

    kind = "jax-jit-step"

    def __init__(self, X, y, batch_size, weights, lr=C.LR, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(X, y, batch_size, weights, lr, betas, eps)
        self._step = self.jax.jit(self._step_fn, donate_argnums=0)
        # compile every batch size of an epoch, on a throw-away state
        warm = self._initial_state()
        for size in sorted({stop - start for start, stop in self.cuts}):
            warm = self._step(warm, self.Xd, self.yd, np.arange(size, dtype=np.int32))
        self.jax.block_until_ready(warm)

    def epoch(self, seed, epochs=1):
        step, Xd, yd, cuts, n = self._step, self.Xd, self.yd, self.cuts, len(self.X)
        state = self.state
        for order in C.epoch_orders(n, seed, epochs):
            order = order.astype(np.int32)
            state = self._reset_total(state)
            for start, stop in cuts:
                state = step(state, Xd, yd, order[start:stop])
        self.state = self.jax.block_until_ready(state)
        self.last_loss = float(state[4]) / n
        return self.last_loss


class JaxScanEpoch(_JaxTrainer):
    """One ``jax.jit`` call per epoch: ``jax.lax.scan`` of the training step over the full
    batches (the epoch's order cut to ``(steps, batch_size)``), then the short last batch,
    if any, as one more step inside the same compiled function (no padding, no mask: the
    rows and the computation are exactly those of the unpadded step, and there is no second
    call). The state is donated; the function is compiled in ``__init__``."""

    kind = "jax-scan-epoch"

    def __init__(self, X, y, batch_size, weights, lr=C.LR, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(X, y, batch_size, weights, lr, betas, eps)
        jax, step = self.jax, self._step_fn
        n = len(X)
        full = n // batch_size * batch_size

        def run_epoch(state, X, y, order):
            def body(s, idx):
                return step(s, X, y, idx), None

            if full:
                state, _ = jax.lax.scan(body, state, order[:full].reshape(-1, batch_size))
            if full < n:
                state = step(state, X, y, order[full:])
            return state

        self._run_epoch = jax.jit(run_epoch, donate_argnums=0)
        warm = self._run_epoch(self._initial_state(), self.Xd, self.yd,
                               np.arange(n, dtype=np.int32))
        jax.block_until_ready(warm)

    def epoch(self, seed, epochs=1):
        run, Xd, yd, n = self._run_epoch, self.Xd, self.yd, len(self.X)
        state = self.state
        for order in C.epoch_orders(n, seed, epochs):
            state = run(self._reset_total(state), Xd, yd, order.astype(np.int32))
        self.state = self.jax.block_until_ready(state)
        self.last_loss = float(state[4]) / n
        return self.last_loss
