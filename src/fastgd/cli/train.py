"""``fastgd train``: train an MLP classifier and report its accuracy on a held-out split."""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, cast

import numpy as np

from .. import datasets, nn, optim
from .._atomic import atomic_write
from .._typing import Array, DTypeLike, FloatArray
from ..train import History, fit
from ..train.errors import DivergenceError
from . import CLIError

#: --optimizer's choices: every algorithm of `fastgd.optim.ALGORITHMS` by name, "momentum"
#: (SGD with momentum 0.9) and "lbfgs" (L-BFGS with the strong-Wolfe line search, full batch)
OPTIMIZERS: dict[str, Any] = {**optim.ALGORITHMS, "momentum": optim.SGD,
                              "lbfgs": optim.LBFGS}
#: the default --lr and --batch-size (lbfgs: torch's lr 1, and the full batch it needs)
DEFAULT_LR, DEFAULT_BATCH = 1e-3, 32


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", metavar="PATH",
                   help=".csv (numeric features and a label column) or .npz (arrays X and y); "
                        "default: the bundled 8x8 handwritten digits")
    p.add_argument("--label-column", default="-1", metavar="NAME|INDEX",
                   help="the .csv column holding the labels (default: the last)")
    p.add_argument("--hidden", default="128", metavar="SIZES",
                   help="hidden layer sizes, comma-separated (default 128; '' for none)")
    p.add_argument("--activation", default="relu", choices=list(nn.activations.HIDDEN_ACTIVATIONS))
    p.add_argument("--optimizer", default="adam", choices=sorted(OPTIMIZERS),
                   help="default adam; momentum is SGD with momentum 0.9; lbfgs is L-BFGS "
                        "with the strong-Wolfe line search, full batch, one L-BFGS step (up "
                        "to 20 iterations) an epoch")
    p.add_argument("--lr", type=float, default=None,
                   help="learning rate (default 1e-3; 1 with --optimizer lbfgs)")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=None,
                   help="rows per step; 0 for full-batch gradient descent (default 32; "
                        "--optimizer lbfgs trains full batch and takes only 0)")
    p.add_argument("--test-size", type=float, default=0.25,
                   help="fraction held out for the test accuracy (default 0.25)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--save", metavar="MODEL.npz", help="save the trained model (and optimizer)")
    p.add_argument("--plot", metavar="LOSS.png", help="plot the loss curves (needs matplotlib)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--distributed", action="store_true",
                   help="train data-parallel over the MPI ranks (needs fastgd[mpi]); the "
                        "default when started by mpiexec with more than one process")


def run(args: argparse.Namespace) -> int:
    comm = _communicator(args)
    if comm is None:
        _train_and_report(args, *_prepare(args))
        return 0
    # every rank reads the data and builds the same model; rank 0 alone prints. An error
    # on any rank before training is raised on all of them (none waits for the others)
    if comm.Get_rank() != 0:
        sys.stdout = sys.stderr = open(os.devnull, "w")
    else:
        print(f"fastgd train: data-parallel over {comm.Get_size()} MPI ranks",
              file=sys.stderr, flush=True)
    prepared: _Prepared | None = None
    error = None
    try:
        prepared = _prepare(args)
        if args.optimizer == "lbfgs":
            raise CLIError("--optimizer lbfgs (full batch, one step an epoch) cannot train "
                           "data-parallel: leave out --distributed and mpiexec")
    except CLIError as exc:
        error = str(exc)
    errors = [e for e in comm.allgather(error) if e is not None]
    if errors:
        raise CLIError(errors[0])
    assert prepared is not None
    _train_and_report(args, *prepared, comm=comm)
    return 0


def _communicator(args: argparse.Namespace) -> Any:
    """MPI's COMM_WORLD with --distributed or when mpiexec started several processes, else
    None (mpi4py is imported only then)."""
    from ..train import _mpi
    if not (args.distributed or _mpi.launched_by_mpi()):
        return None
    try:
        return _mpi.mpi().COMM_WORLD
    except ImportError as exc:
        raise CLIError(str(exc)) from None


#: what `_prepare` gives `_train_and_report`
_Prepared = tuple[nn.Sequential, optim.Optimizer, np.dtype[Any], Array, FloatArray,
                  FloatArray, Array, Array]


def _prepare(args: argparse.Namespace) -> _Prepared:
    """The model, optimizer, dtype, classes and the training and test splits."""
    X, y, name, classes, hidden = _read_data(args)
    X_tr, X_te, y_tr, y_te = datasets.train_test_split(X, y.astype(np.int64), args.test_size,
                                                        seed=args.seed)
    if len(X_tr) == 0 or len(X_te) == 0:
        raise CLIError(f"--test-size {args.test_size} leaves an empty split of {len(X)} rows")
    model, opt, dtype = _build(args, X, X_tr, X_te, name, classes, hidden)
    return model, opt, dtype, classes, X_tr, X_te, y_tr, y_te


def _read_data(args: argparse.Namespace) -> tuple[FloatArray, Array, str, Array, list[int]]:
    """The data and its classes, and --hidden parsed; every argument checked."""
    X, y, name = _load(args.data, args.label_column)
    classes, y = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise CLIError(f"the labels hold a single class ({classes[0]!r}); need at least two")
    if len(classes) > max(2, len(y) // 2):
        raise CLIError(f"{len(classes)} distinct labels for {len(y)} rows: the label column "
                       "does not look like class labels (use --label-column)")
    try:
        hidden = [int(h) for h in args.hidden.split(",") if h.strip()]
    except ValueError:
        raise CLIError(f"--hidden must be comma-separated integers, got {args.hidden!r}") from None
    if any(h < 1 for h in hidden):
        raise CLIError("--hidden sizes must be positive")
    lbfgs = args.optimizer == "lbfgs"
    if lbfgs and args.batch_size not in (None, 0):
        raise CLIError(f"--optimizer lbfgs trains full batch: leave out --batch-size (or "
                       f"pass 0), got --batch-size {args.batch_size}")
    if args.batch_size is None:
        args.batch_size = 0 if lbfgs else DEFAULT_BATCH
    if args.lr is None:
        args.lr = 1.0 if lbfgs else DEFAULT_LR
    for flag, v, ok in (("--epochs", args.epochs, args.epochs >= 1),
                        ("--batch-size", args.batch_size, args.batch_size >= 0),
                        ("--lr", args.lr, args.lr > 0 and np.isfinite(args.lr)),
                        ("--test-size", args.test_size, 0 < args.test_size < 1)):
        if not ok:
            raise CLIError(f"{flag} is out of range: {v}")
    return X, y, name, classes, hidden


def _build(args: argparse.Namespace, X: FloatArray, X_tr: FloatArray, X_te: FloatArray,
           name: str, classes: Array, hidden: list[int]
           ) -> tuple[nn.Sequential, optim.Optimizer, np.dtype[Any]]:
    """The model and its optimizer, and the dtype; prints what they are."""
    dtype = np.dtype(args.dtype)
    sizes = [X.shape[1], *hidden, len(classes)]
    model = nn.MLP(sizes, args.activation, dtype=dtype, seed=args.seed)
    kw: dict[str, Any] = {"momentum": 0.9} if args.optimizer == "momentum" else {}
    if args.optimizer == "lbfgs":
        kw = {"line_search_fn": "strong_wolfe"}
    opt = OPTIMIZERS[args.optimizer](model.parameters(), lr=args.lr, **kw)
    search = " (strong-Wolfe line search)" if "line_search_fn" in kw else ""
    print(f"data: {name}: {len(X)} samples, {X.shape[1]} features, {len(classes)} classes "
          f"({len(X_tr)} train / {len(X_te)} test)")
    print(f"model: MLP {'-'.join(map(str, sizes))} {args.activation}, {dtype.name}; "
          f"{args.optimizer} lr={args.lr}{search}; {args.epochs} epochs, "
          f"batch {'full' if args.batch_size == 0 else args.batch_size}")
    return model, opt, dtype


def _train_and_report(args: argparse.Namespace, model: nn.Sequential, opt: optim.Optimizer,
                      dtype: DTypeLike, classes: Array, X_tr: FloatArray, X_te: FloatArray,
                      y_tr: Array, y_te: Array, comm: Any = None) -> None:
    """Train on the standardized training split (data-parallel over ``comm``'s ranks when
    given), then save/plot as asked (once, on rank 0) and print the test accuracy."""
    mean, std = X_tr.mean(axis=0), X_tr.std(axis=0)
    std[std == 0] = 1.0
    t0 = time.perf_counter()
    bar = not args.quiet and sys.stderr.isatty()
    every = max(1, args.epochs // 10)

    # progress as lines when there is no terminal for a bar
    def report(epoch: int, logs: dict[str, float]) -> None:
        if not args.quiet and not bar and ((epoch + 1) % every == 0 or epoch + 1 == args.epochs):
            print(f"epoch {epoch + 1}/{args.epochs}: loss {logs['loss']:.4f}", flush=True)

    try:
        history = fit(model, ((X_tr - mean) / std).astype(dtype), y_tr, loss="cross_entropy",
                      optimizer=opt, epochs=args.epochs,
                      batch_size=None if args.batch_size == 0 else args.batch_size,
                      seed=args.seed, progress=bar, callbacks=[report], comm=comm)
    except DivergenceError as exc:
        raise CLIError(str(exc)) from None
    seconds = time.perf_counter() - t0
    _fold_standardization(model, mean, std)  # the model now takes raw features
    accuracy = float(np.mean(model.predict(X_te.astype(dtype)).argmax(axis=1) == y_te))
    print(f"trained in {seconds:.2f} s; final training loss {history['loss'][-1]:.4f}")
    if args.save:
        try:
            model.save(args.save, optimizer=opt, comm=comm)
        except OSError as exc:
            raise CLIError(f"cannot write {args.save}: {exc.strerror or exc}") from None
        print(f"saved model to {args.save} (it takes raw, unscaled features; classes "
              f"{list(classes)[:10]}{'...' if len(classes) > 10 else ''})")
    if args.plot and (comm is None or comm.Get_rank() == 0):
        _plot(history, args.plot)
        print(f"saved loss curve to {args.plot}")
    print(f"test accuracy: {accuracy:.4f}")


def _fold_standardization(model: nn.Sequential, mean: FloatArray, std: FloatArray) -> None:
    """Make the first Linear layer apply (x - mean) / std itself: W' = W / std, b' = b - mean' W'."""
    first = cast(nn.Linear, model.layers[0])  # an MLP starts with a Linear layer
    scale = (1.0 / std).astype(first.dtype)
    first.W = first.W * scale[:, None]
    if first.b is not None:
        first.b = first.b - mean.astype(first.dtype) @ first.W


def _load(path: str | None, label_column: str) -> tuple[FloatArray, Array, str]:
    if path is None:
        X, y = datasets.load_digits()
        return X, y, "bundled digits"
    if not os.path.exists(path):
        raise CLIError(f"no such file: {path}")
    if os.path.isdir(path):
        raise CLIError(f"{path} is a folder, not a data file")
    if path.endswith(".npz"):
        try:
            with np.load(path, allow_pickle=False) as f:
                if "X" not in f.files or "y" not in f.files:
                    raise CLIError(f"{path} must hold arrays named X and y, has {f.files}")
                X, y = f["X"], f["y"]
        except (OSError, ValueError) as exc:
            raise CLIError(f"cannot read {path} as .npz: {exc}") from None
    else:
        X, y = _read_csv(path, label_column)
    if X.ndim != 2:
        raise CLIError(f"X must be 2-D (samples, features), got shape {X.shape}")
    if y.ndim != 1 or len(y) != len(X):
        raise CLIError(f"y must be 1-D with one label per row of X ({len(X)}), got shape {y.shape}")
    if len(X) < 4:
        raise CLIError(f"{path} has {len(X)} rows: too few to train and test")
    if X.dtype == object or not np.issubdtype(X.dtype, np.number):
        raise CLIError(f"{path}: the features must be numeric, got {X.dtype}")
    X = X.astype(np.float64)
    if not np.isfinite(X).all():
        raise CLIError(f"{path}: the features contain NaN or infinite values")
    if np.issubdtype(y.dtype, np.floating):
        if not np.isfinite(y).all() or np.any(y != np.round(y)):
            raise CLIError(f"{path}: the labels must be integers or names, got fractional values")
        y = y.astype(np.int64)
    return X, y, os.path.basename(path)


def _read_csv(path: str, label_column: str) -> tuple[FloatArray, Array]:
    import csv
    try:
        with open(path, newline="") as fh:
            rows = [r for r in csv.reader(fh) if r and any(c.strip() for c in r)]
    except UnicodeDecodeError:
        raise CLIError(f"{path} is not a text .csv file") from None
    if not rows:
        raise CLIError(f"{path} is empty")
    header = None
    if not all(_is_number(c) for c in rows[0]):
        header, rows = [c.strip() for c in rows[0]], rows[1:]
    width = len(rows[0]) if rows else 0
    for i, r in enumerate(rows):
        if len(r) != width:
            raise CLIError(f"{path}: row {i + 1 + (header is not None)} has {len(r)} columns, "
                           f"expected {width}")
    if width < 2:
        raise CLIError(f"{path}: need at least one feature column and a label column")
    if header is not None and label_column in header:
        col = header.index(label_column)
    else:
        try:
            col = int(label_column)
        except ValueError:
            raise CLIError(f"--label-column {label_column!r} is not a column "
                           f"{'name ' + str(header) if header else 'index'}") from None
        if not -width <= col < width:
            raise CLIError(f"--label-column {col} is out of range for {width} columns")
        col %= width
    labels = np.array([r[col].strip() for r in rows])
    feats = [[c for j, c in enumerate(r) if j != col] for r in rows]
    try:
        X = np.array(feats, dtype=np.float64)
    except ValueError:
        bad = next(c for r in feats for c in r if not _is_number(c))
        raise CLIError(f"{path}: non-numeric feature value {bad!r}") from None
    y = labels.astype(np.float64) if all(_is_number(v) for v in labels) else labels
    return X, y


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _plot(history: History, path: str) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise CLIError("--plot needs matplotlib: pip install 'fastgd[plot]'") from None
    fig, ax = plt.subplots(figsize=(6, 4))
    epochs = np.arange(1, history.epochs + 1)
    ax.plot(epochs, history["loss"], label="training loss")
    if "val_loss" in history:
        ax.plot(epochs, history["val_loss"], label="validation loss")
    ax.set(xlabel="epoch", ylabel="cross-entropy", title="fastgd train: loss per epoch")
    ax.legend()
    fig.tight_layout()
    _atomic_savefig(fig, path)
    plt.close(fig)


def _atomic_savefig(fig: Any, path: str) -> None:
    """Save ``fig`` to ``path`` (format from the extension, PNG without one) with fastgd's
    one atomic writer; a `CLIError` naming ``path`` when it cannot be written."""
    fmt = os.path.splitext(path)[1][1:].lower() or "png"
    supported = fig.canvas.get_supported_filetypes()
    if fmt not in supported:
        raise CLIError(f"cannot write {path}: matplotlib writes {', '.join(sorted(supported))}, "
                       f"not .{fmt}")
    try:
        with atomic_write(path) as fh:
            fig.savefig(fh, format=fmt, dpi=100)
    except OSError as exc:
        raise CLIError(f"cannot write {path}: {exc.strerror or exc}") from None
