"""Shared set-up for the neural-network benchmarks (``test_bench_nn.py``, ``ratios_nn.py``).

Not a test module. It builds "trainers": one network trained by one contender (fastgd
through ``fastgd.fit``, fastgd through its compiled program by hand, plain numpy, PyTorch
eager), all starting from bit-identical weights (copied from one fastgd model) and drawing
the same shuffled batches, so after the same work their parameters can be compared
(`max_param_diff`) to show that the timed calls did the same computation.

Every trainer has ``epoch(seed, epochs=1)`` (train ``epochs`` epochs over shuffled batches;
the order of epoch ``e`` is the ``e``-th ``numpy.random.default_rng(seed).permutation(n)``,
exactly as ``fastgd.fit(..., seed=seed)`` draws it), ``steps_per_epoch``, ``params()``
(numpy arrays in fastgd's layout: ``W`` (in, out), ``b`` (out,)) and ``predict(X)``.
"""
import math
import os
import time

import numpy as np

import fastgd

#: 1. digits: MLP 64-128-10 ReLU, Adam lr 1e-3, batch 32, 25 % hold-out
DIGITS_SIZES = (64, 128, 10)
DIGITS_BATCH = 32
DIGITS_EPOCHS = 30
DIGITS_ACCURACY_GOAL = 0.96
LR = 1e-3
#: 2. one Linear(784, 512) forward + backward at batch 256
LINEAR_IN, LINEAR_OUT, LINEAR_BATCH = 784, 512, 256
#: 3. MLP 784-1024-1024-10 ReLU, Adam, batch 256, 8 batches of random data
MLP_SIZES = (784, 1024, 1024, 10)
MLP_BATCH = 256
MLP_BATCHES = 8
#: seed of the weights (fastgd.nn.MLP(seed=...)) and of the random data
SEED = 0

#: goals (issue 11): fastgd per-step speed-up (competitor time / fastgd time) to reach;
#: "digits-products": the most fit's step may take as a multiple of its five products alone;
#: "products-blas": the most fastgd's five products may take as a multiple of the fastest
#: BLAS installed running the same five products
GOALS = {"digits-numpy": 5.0, "digits-torch": 25.0, "digits-jax-scan": 2.5,
         "digits-products": 1.35, "products-blas": 1.05, "linear-numpy": 1.0,
         "mlp-torch": 1.25}


def digits_products(batch=DIGITS_BATCH, sizes=DIGITS_SIZES, seed=SEED):
    """The five float32 products of one digits training step, as
    ``fastgd._nn_ops.products`` specs ``(trans_a, trans_b, A, B, C)``: X W1, A1 W2 (forward),
    A1^T dZ2, dZ2 W2^T, X^T dZ1 (backward; the first layer's input gradient is not needed)."""
    rng = np.random.default_rng(seed)
    f = np.float32
    i, h, o = sizes
    X = rng.standard_normal((batch, i)).astype(f)
    W1 = rng.standard_normal((i, h)).astype(f)
    W2 = rng.standard_normal((h, o)).astype(f)
    A1 = rng.standard_normal((batch, h)).astype(f)
    dZ1 = rng.standard_normal((batch, h)).astype(f)
    dZ2 = rng.standard_normal((batch, o)).astype(f)
    out = [np.empty(s, f) for s in ((batch, h), (batch, o), (h, o), (batch, h), (i, h))]
    return [(False, False, X, W1, out[0]), (False, False, A1, W2, out[1]),
            (True, False, A1, dZ2, out[2]), (False, True, dZ2, W2, out[3]),
            (True, False, X, dZ1, out[4])]


def installed_sgemms():
    """{name: (address of cblas_sgemm, ilp64)} of every OpenBLAS in the process: fastgd's
    (scipy-openblas32), numpy's (numpy.libs) and scipy's (scipy.libs, if scipy is there)."""
    import ctypes
    import glob
    out = {}
    try:
        import scipy_openblas32
        lib = ctypes.CDLL(os.path.join(scipy_openblas32.get_lib_dir(),
                                       scipy_openblas32.get_library(fullname=True)))
        out[f"scipy-openblas32 {scipy_openblas32.__version__} (fastgd's, raw cblas)"] = (
            ctypes.cast(lib.scipy_cblas_sgemm, ctypes.c_void_p).value, False)
    except (ImportError, OSError, AttributeError):
        pass
    site = os.path.dirname(os.path.dirname(os.path.abspath(np.__file__)))
    for folder, sym, ilp64, who in (("numpy.libs", "scipy_cblas_sgemm64_", True, "numpy"),
                                    ("scipy.libs", "scipy_cblas_sgemm", False, "scipy")):
        for path in sorted(glob.glob(os.path.join(site, folder, "libscipy_openblas*.so*"))):
            try:
                lib = ctypes.CDLL(path)
                addr = ctypes.cast(getattr(lib, sym), ctypes.c_void_p).value
            except (OSError, AttributeError):
                continue
            out[f"{who}'s OpenBLAS ({os.path.basename(path)})"] = (addr, ilp64)
    return out


# ----------------------------------------------------------------------------- data

def digits_data():
    """(X_train, X_test, y_train, y_test): digits / 16 as float32, 25 % held out (seed 0)."""
    X, y = fastgd.datasets.load_digits()
    X = (X / 16).astype(np.float32)
    Xtr, Xte, ytr, yte = fastgd.datasets.train_test_split(X, y, 0.25, seed=0)
    return (np.ascontiguousarray(Xtr), np.ascontiguousarray(Xte),
            np.ascontiguousarray(ytr, dtype=np.int64), np.ascontiguousarray(yte, dtype=np.int64))


def mlp_data(seed=SEED):
    """Random standard-normal float32 rows (MLP_BATCH * MLP_BATCHES, 784), labels 0..9."""
    rng = np.random.default_rng(seed)
    n = MLP_BATCH * MLP_BATCHES
    X = rng.standard_normal((n, MLP_SIZES[0]), dtype=np.float32)
    y = rng.integers(0, MLP_SIZES[-1], n).astype(np.int64)
    return X, y


def linear_data(seed=SEED):
    """x (256, 784), grad_output (256, 512) standard-normal float32."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((LINEAR_BATCH, LINEAR_IN), dtype=np.float32)
    g = rng.standard_normal((LINEAR_BATCH, LINEAR_OUT), dtype=np.float32)
    return x, g


def epoch_orders(n, seed, epochs):
    """The row orders ``fastgd.fit(..., shuffle=True, seed=seed)`` uses, epoch by epoch."""
    rng = np.random.default_rng(seed)
    return [rng.permutation(n).astype(np.int64) for _ in range(epochs)]


def batches(n, batch_size):
    """(start, stop) of each batch of an epoch (the last one may be short), as fit cuts them."""
    return [(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]


# ----------------------------------------------------------------------------- trainers

def initial_weights(sizes, seed=SEED):
    """[(W, b), ...] of ``fastgd.nn.MLP(sizes, seed=seed)`` (He init for the ReLU layers)."""
    model = fastgd.nn.MLP(list(sizes), seed=seed)
    return [(layer.W.copy(), layer.b.copy()) for layer in model.layers
            if isinstance(layer, fastgd.nn.Linear)]


class _Trainer:
    kind = "?"

    def __init__(self, X, y, batch_size):
        self.X, self.y, self.batch_size = X, y, batch_size
        self.cuts = batches(len(X), batch_size)
        self.steps_per_epoch = len(self.cuts)

    def accuracy(self, X, y):
        return float(np.mean(self.predict(X).argmax(axis=1) == y))


class FastgdFit(_Trainer):
    """``fastgd.fit`` on a ``fastgd.nn.MLP`` with ``fastgd.optim.Adam`` (one backend for both)."""

    def __init__(self, X, y, batch_size, sizes, backend="native", lr=LR, seed=SEED):
        super().__init__(X, y, batch_size)
        self.kind = f"fastgd-{backend}"
        self.model = fastgd.nn.MLP(list(sizes), seed=seed, backend=backend)
        self.opt = fastgd.optim.Adam(self.model.parameters(), lr=lr, backend=backend)
        self.last_loss = None

    def epoch(self, seed, epochs=1):
        h = fastgd.fit(self.model, self.X, self.y, loss="cross_entropy", optimizer=self.opt,
                       epochs=epochs, batch_size=self.batch_size, seed=seed, progress=False)
        self.last_loss = h["loss"][-1]
        return self.last_loss

    def params(self):
        return self.model.parameters()

    def predict(self, X):
        return self.model.predict(X)


class FastgdManual(FastgdFit):
    """fit's per-step loop written out (the loop fit runs with ``accept_if_improves`` or a
    reference optimizer; with a native optimizer it runs the whole epoch in one C call): per
    batch ``program.train_batch``, then ``opt.backup().save()`` (fit's divergence back-up of
    the parameters and the optimizer state) and
    ``opt.step(model.gradients())``, each call timed on its own (``pieces``: seconds per
    call, by piece).
    ``snapshot=False`` leaves the back-up out (the bare train_batch + step)."""

    PIECES = ("train_batch", "snapshot", "opt.step")

    def __init__(self, X, y, batch_size, sizes, lr=LR, seed=SEED, snapshot=True):
        super().__init__(X, y, batch_size, sizes, "native", lr, seed)
        self.kind = "fastgd-native per-step loop"
        self.snapshot = snapshot
        self.pieces = {k: [] for k in self.PIECES}
        self.record = False

    def epoch(self, seed, epochs=1):
        program, model, opt = self.model.program, self.model, self.opt
        train, snap, step = program.train_batch, opt.backup().save, opt.step
        X, y, n = self.X, self.y, len(self.X)
        clock = time.perf_counter
        tb, ts, to = self.pieces["train_batch"], self.pieces["snapshot"], self.pieces["opt.step"]
        record = self.record
        for order in epoch_orders(n, seed, epochs):
            total = 0.0
            for start, stop in self.cuts:
                t0 = clock()
                value = train(X, y, order, start, stop, "cross_entropy")
                t1 = clock()
                if not math.isfinite(value):
                    raise FloatingPointError("the loss diverged")
                if self.snapshot:
                    snap()
                t2 = clock()
                step(model.gradients())
                t3 = clock()
                if record:
                    tb.append(t1 - t0)
                    ts.append(t2 - t1)
                    to.append(t3 - t2)
                total += value * (stop - start)
            self.last_loss = total / n
        return self.last_loss


class FastgdFitFlush(FastgdFit):
    """`FastgdFit` with ``fastgd.set_flush_denormal(True)`` during its ``epoch()`` (restored
    afterwards): the updates flush subnormal numbers to zero. On the digits data the Adam
    moments of the weights of always-zero input pixels decay into the subnormal range, where
    IEEE arithmetic is slow."""

    def __init__(self, X, y, batch_size, sizes, lr=LR, seed=SEED):
        super().__init__(X, y, batch_size, sizes, "native", lr, seed)
        self.kind = "fastgd-native (fit), flush_denormal"

    def epoch(self, seed, epochs=1):
        before = fastgd.get_flush_denormal()
        fastgd.set_flush_denormal(True)
        try:
            return super().epoch(seed, epochs)
        finally:
            fastgd.set_flush_denormal(before)


class FastgdOptimizerThreads(FastgdFit):
    """`FastgdFit` on ``threads`` threads during its ``epoch()`` (``fastgd.set_num_threads``,
    restored afterwards: the optimizer kernels and the products alike)."""

    def __init__(self, X, y, batch_size, sizes, threads=1, lr=LR, seed=SEED):
        super().__init__(X, y, batch_size, sizes, "native", lr, seed)
        self.threads = threads
        self.kind = f"fastgd-native (fit), {threads} thread(s)"

    def epoch(self, seed, epochs=1):
        before = fastgd.get_num_threads()
        fastgd.set_num_threads(self.threads)
        try:
            return super().epoch(seed, epochs)
        finally:
            fastgd.set_num_threads(before)


class NumpyMLP(_Trainer):
    """The same training step in plain numpy, float32 throughout.

    Per batch: gather by fancy indexing; forward ``h @ W + b`` with ReLU between layers;
    max-shifted softmax cross-entropy (mean over the batch); backward by the chain rule;
    Adam with PyTorch's formulas (single-tensor ``torch.optim.Adam``):
    ``m.lerp_(g, 1 - b1)``, ``v = b2 v + (1 - b2) g^2``,
    ``p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)``.
    """

    kind = "numpy"

    def __init__(self, X, y, batch_size, weights, lr=LR, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(X, y, batch_size)
        self.W = [w.copy() for w, _ in weights]
        self.b = [b.copy() for _, b in weights]
        self.dW = [np.empty_like(w) for w in self.W]
        self.db = [np.empty_like(b) for b in self.b]
        plist = [p for pair in zip(self.W, self.b) for p in pair]
        self._params = plist
        self._grads = [g for pair in zip(self.dW, self.db) for g in pair]
        self.m = [np.zeros_like(p) for p in plist]
        self.v = [np.zeros_like(p) for p in plist]
        self.lr, (self.b1, self.b2), self.eps = lr, betas, eps
        self.t = 0
        self.last_loss = None

    def step(self, idx):
        f32 = np.float32
        x = self.X[idx]
        labels = self.y[idx]
        n = len(idx)
        L = len(self.W)
        acts = [x]
        h = x
        for i in range(L):
            z = h @ self.W[i]
            z += self.b[i]
            if i < L - 1:
                np.maximum(z, 0, out=z)
            acts.append(z)
            h = z
        # softmax cross-entropy, max-shifted
        rows = np.arange(n)
        shifted = h - h.max(axis=1, keepdims=True)
        e = np.exp(shifted)
        s = e.sum(axis=1, keepdims=True)
        loss = float(np.mean(np.log(s[:, 0]) - shifted[rows, labels], dtype=np.float64))
        g = e
        g /= s
        g[rows, labels] -= 1
        g *= f32(1.0 / n)
        # backward
        for i in range(L - 1, -1, -1):
            np.matmul(acts[i].T, g, out=self.dW[i])
            np.sum(g, axis=0, out=self.db[i])
            if i > 0:
                g = g @ self.W[i].T
                g *= acts[i] > 0          # ReLU' from its output
        # Adam (torch.optim.Adam, single-tensor, float32)
        self.t += 1
        b1, b2 = self.b1, self.b2
        step_size = f32(self.lr / (1 - b1 ** self.t))
        bc2_sqrt = f32(math.sqrt(1 - b2 ** self.t))
        for p, gr, m, v in zip(self._params, self._grads, self.m, self.v):
            m += f32(1 - b1) * (gr - m)                   # m.lerp_(g, 1 - b1)
            v *= f32(b2)
            v += f32(1 - b2) * gr * gr                    # v.mul_(b2).addcmul_(g, g, 1 - b2)
            denom = np.sqrt(v)
            denom /= bc2_sqrt
            denom += f32(self.eps)
            p -= step_size * (m / denom)                  # p.addcdiv_(m, denom, -step_size)
        return loss

    def epoch(self, seed, epochs=1):
        n = len(self.X)
        for order in epoch_orders(n, seed, epochs):
            total = 0.0
            for start, stop in self.cuts:
                total += self.step(order[start:stop]) * (stop - start)
            self.last_loss = total / n
        return self.last_loss

    def params(self):
        return self._params

    def predict(self, X):
        h = X
        for i in range(len(self.W)):
            h = h @ self.W[i] + self.b[i]
            if i < len(self.W) - 1:
                h = np.maximum(h, 0)
        return h


class TorchMLP(_Trainer):
    """PyTorch eager: ``nn.Sequential(Linear, ReLU, ..., Linear)``, ``nn.CrossEntropyLoss``,
    ``optim.Adam(lr)`` with torch's default implementation choice; per batch
    ``zero_grad()``, forward, loss, ``backward()``, ``step()`` and ``loss.item()``."""

    kind = "torch"

    def __init__(self, X, y, batch_size, weights, torch, lr=LR):
        super().__init__(X, y, batch_size)
        self.torch = torch
        layers = []
        for i, (w, b) in enumerate(weights):
            lin = torch.nn.Linear(w.shape[0], w.shape[1])
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(w.T)))
                lin.bias.copy_(torch.from_numpy(b))
            layers.append(lin)
            if i < len(weights) - 1:
                layers.append(torch.nn.ReLU())
        self.model = torch.nn.Sequential(*layers)
        self.lossfn = torch.nn.CrossEntropyLoss()
        self.opt = torch.optim.Adam(self.model.parameters(), lr=lr)
        self.Xt = torch.from_numpy(X)
        self.yt = torch.from_numpy(y)
        self.last_loss = None

    def epoch(self, seed, epochs=1):
        torch, model, lossfn, opt = self.torch, self.model, self.lossfn, self.opt
        Xt, yt, n = self.Xt, self.yt, len(self.X)
        for order in epoch_orders(n, seed, epochs):
            ot = torch.from_numpy(order)
            total = 0.0
            for start, stop in self.cuts:
                idx = ot[start:stop]
                xb, yb = Xt[idx], yt[idx]
                opt.zero_grad()
                loss = lossfn(model(xb), yb)
                loss.backward()
                opt.step()
                total += loss.item() * (stop - start)
            self.last_loss = total / n
        return self.last_loss

    def params(self):
        out = []
        for m in self.model:
            if isinstance(m, self.torch.nn.Linear):
                out += [m.weight.detach().numpy().T, m.bias.detach().numpy()]
        return out

    def predict(self, X):
        with self.torch.no_grad():
            return self.model(self.torch.from_numpy(X)).numpy()


def torch_adam_impl(torch, trainer):
    """Which implementation torch.optim.Adam picks for ``trainer``'s parameters by default."""
    if trainer.opt.defaults.get("fused"):
        return "fused"
    if trainer.opt.defaults.get("foreach") is not None:
        return "foreach" if trainer.opt.defaults["foreach"] else "single-tensor"
    try:
        from torch.optim.optimizer import _default_to_fused_or_foreach
        _, foreach = _default_to_fused_or_foreach(list(trainer.model.parameters()),
                                                  differentiable=False, use_fused=False)
        return "foreach (torch's default here)" if foreach \
            else "single-tensor (torch's default here: foreach=None)"
    except Exception:  # private API: may move
        return "torch's default (foreach=None)"


def print_param_checks(trainers, native, after):
    """One line per trainer: its largest parameter difference from ``native`` ``after`` the
    same training (a phrase: "after the same 12 epochs")."""
    for name, t in trainers.items():
        if t is not native:
            print(f"  check: max |param({name}) - param(fastgd-native)| = "
                  f"{max_param_diff(native, t):.1e} {after}")


def max_param_diff(a, b):
    """Largest |a - b| over two trainers' parameters (float64)."""
    return max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
               for x, y in zip(a.params(), b.params()))


# ----------------------------------------------------------------------------- Linear(784, 512)

class LinearContender:
    """One Linear(784, 512) forward then backward per ``step()``, on its own copy of the data."""

    def __init__(self, kind, torch=None, seed=SEED):
        self.kind = kind
        x, g = linear_data(seed)
        layer = fastgd.nn.Linear(LINEAR_IN, LINEAR_OUT, seed=seed)
        rng = np.random.default_rng(seed + 1)
        layer.b = rng.standard_normal(LINEAR_OUT).astype(np.float32)
        W, b = layer.W.copy(), layer.b.copy()
        self.x, self.g = x, g
        self.out = None
        if kind in ("fastgd-native", "fastgd-compiled"):
            # the layer's own calls, or the same layer compiled into a one-layer program
            model = layer if kind == "fastgd-native" else fastgd.nn.Sequential(layer)
            self._model = model

            def step():
                model.forward(x)
                dx = model.backward(g)
                self.out = (layer.dW, layer.db, dx)
        elif kind == "numpy":
            def step():
                z = x @ W
                z += b
                dW = x.T @ g
                db = g.sum(axis=0)
                dx = g @ W.T
                self.out = (dW, db, dx)
                return z
        elif kind == "scipy-blas":
            # numpy's step with its three products through scipy.linalg.blas.sgemm: the
            # OpenBLAS build that fastgd's cython_blas calls, so this is fastgd's ceiling.
            from scipy.linalg import blas
            WF, xF, gF = W.T, x.T, g.T  # column-major views of the row-major arrays

            def step():
                z = blas.sgemm(1.0, WF, xF).T  # (x W)^T = W^T x^T
                z += b
                dW = blas.sgemm(1.0, gF, xF, trans_b=1).T  # (x^T g)^T = g^T x
                db = g.sum(axis=0)
                dx = blas.sgemm(1.0, WF, gF, trans_a=1).T  # (g W^T)^T = W g^T
                self.out = (dW, db, dx)
                return z
        elif kind == "torch":
            if torch is None:
                raise RuntimeError("the torch contender needs the torch module")
            lin = torch.nn.Linear(LINEAR_IN, LINEAR_OUT)
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(W.T)))
                lin.bias.copy_(torch.from_numpy(b))
            xt = torch.from_numpy(x).requires_grad_(True)
            gt = torch.from_numpy(g)

            def step():
                lin.weight.grad = lin.bias.grad = xt.grad = None
                lin(xt).backward(gt)
                self.out = (lin.weight.grad.numpy().T, lin.bias.grad.numpy(), xt.grad.numpy())
        else:
            raise ValueError(f"unknown Linear contender {kind!r}")
        self.step = step


def linear_max_diff(a, b):
    """Largest relative |a - b| over (dW, db, dx) of two Linear contenders' last step."""
    worst = 0.0
    for u, v in zip(a.out, b.out):
        u, v = np.asarray(u, np.float64), np.asarray(v, np.float64)
        worst = max(worst, float(np.max(np.abs(u - v)) / max(np.max(np.abs(v)), 1e-30)))
    return worst


# ----------------------------------------------------------------------------- machine facts

def blas_facts():
    """(name, value) pairs: the BLAS libraries loaded (threadpoolctl), their threads and the
    OpenBLAS tuning variables of the environment."""
    facts = []
    try:
        from threadpoolctl import threadpool_info
        for p in threadpool_info():
            if p.get("user_api") != "blas":
                continue
            path = p.get("filepath", "")
            owner = "fastgd (scipy-openblas32)" if "scipy_openblas32" in path \
                else "scipy" if "scipy.libs" in path \
                else "numpy" if "numpy.libs" in path \
                else "torch" if "torch" in path else "?"
            facts.append((f"BLAS of {owner}",
                          f"{p.get('internal_api')} {p.get('version')} "
                          f"arch={p.get('architecture')} threads={p.get('num_threads')} "
                          f"threading={p.get('threading_layer')} ({p.get('filepath')})"))
    except ImportError:
        facts.append(("threadpoolctl", "not installed"))
    facts.append(("fastgd pool of large products", fastgd.get_blas_pool()))
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS",
                "OMP_NUM_THREADS", "FASTGD_BLAS_POOL", "FASTGD_PIN_WORKERS"):
        facts.append((var, os.environ.get(var, "not set")))
    return facts


def scipy_version():
    try:
        import scipy
        return scipy.__version__
    except ImportError:  # pragma: no cover - fastgd needs scipy
        return "not installed"

