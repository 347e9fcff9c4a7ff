"""The one atomic writer (fastgd._atomic) behind every file fastgd writes: a killed writer
leaves the old file and no garbage, a live writer's temporary file is never removed, errors
name the target, new files honour the umask."""
import errno
import os
import pathlib
import re
import signal
import shutil
import stat
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import fastgd
from fastgd import _atomic, nn
from fastgd._atomic import atomic_write

HAS_TMPFILE = _atomic._O_TMPFILE is not None and os.path.isdir("/proc/self/fd")
MODES = ["tmpfile", "named"] if HAS_TMPFILE else ["named"]
SRC = pathlib.Path(fastgd.__file__).parent


@pytest.fixture(params=MODES)
def mode(request, monkeypatch):
    """Both ways of writing: O_TMPFILE (Linux) and the named temporary file."""
    if request.param == "named":
        monkeypatch.setattr(_atomic, "_O_TMPFILE", None)
    return request.param


def model(seed=0):
    return nn.MLP([3, 4, 2], dtype=np.float64, seed=seed)


def temporaries(folder):
    return sorted(f for f in os.listdir(folder) if f.startswith(".fastgd-") or ".tmp" in f)


def dead_pid():
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def stale_name(target, pid, owner=None, token="0123abcd"):
    base = os.path.basename(target)
    return f".fastgd-{base}.{owner or _atomic._owner()}-{pid}.{token}.tmp"


# ----------------------------------------------------------------------------- killed writers

CHILD = textwrap.dedent("""
    import os, sys, time
    import numpy as np
    from fastgd import _atomic, nn
    mode, path, stage = sys.argv[1:4]
    if mode == "named":
        _atomic._O_TMPFILE = None
    if len(sys.argv) > 4:                       # pretend to be a process that is gone
        fake = int(sys.argv[4])
        _atomic.os.getpid = lambda: fake
    real_savez, real_replace = np.savez, os.replace

    def pause(what):
        print(what, flush=True)
        if sys.stdin.readline() != "go\\n":     # the parent kills us, or lets us go on
            sys.exit(3)

    def slow_savez(fh, **arrays):
        fh.write(b"PK\\x03\\x04 the first bytes of a big model")
        fh.flush()
        pause("writing")
        real_savez(fh, **arrays)

    def slow_replace(src, dst):
        pause("renaming " + os.path.basename(src))
        real_replace(src, dst)

    if stage == "write":
        np.savez = slow_savez
    else:
        os.replace = slow_replace
    nn.MLP([3, 4, 2], dtype=np.float64, seed=7).save(path)
    print("saved", flush=True)
""")


def start_child(mode, path, stage, *extra):
    proc = subprocess.Popen([sys.executable, "-c", CHILD, mode, str(path), stage,
                             *map(str, extra)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.startswith(("writing", "renaming")), (line, proc.wait())
    return proc, line.strip()


def kill(proc):
    proc.kill()
    proc.wait()
    assert proc.returncode == -signal.SIGKILL


def params_of(path):
    return [p.copy() for p in fastgd.load(path).parameters()]


@pytest.mark.parametrize("stage", ["write", "rename"])
def test_sigkill_keeps_the_old_file_and_leaves_no_garbage(mode, stage, tmp_path):
    path = tmp_path / "model.npz"
    model(0).save(path)
    before = path.read_bytes()
    proc, _ = start_child(mode, path, stage)
    assert path.read_bytes() == before
    named_now = temporaries(tmp_path)
    if mode == "tmpfile" and stage == "write":
        assert named_now == []                 # O_TMPFILE: the data has no name yet
    else:
        assert len(named_now) == 1
    kill(proc)
    assert path.read_bytes() == before         # the old file is intact ...
    for a, b in zip(params_of(path), model(0).parameters()):
        np.testing.assert_array_equal(a, b)
    left = temporaries(tmp_path)
    if mode == "tmpfile" and stage == "write":
        assert left == []                      # ... and nothing is left, at once
    else:
        assert left == named_now               # a name that outlived its writer ...
    model(1).save(path)
    assert temporaries(tmp_path) == []         # ... is removed by the next save of the path
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]
    for a, b in zip(params_of(path), model(1).parameters()):
        np.testing.assert_array_equal(a, b)


def test_many_killed_saves_do_not_accumulate(tmp_path, monkeypatch):
    monkeypatch.setattr(_atomic, "_O_TMPFILE", None)
    path = tmp_path / "model.npz"
    model(0).save(path)
    for _ in range(3):
        proc, _ = start_child("named", path, "write")
        kill(proc)
        model(0).save(path)
        assert temporaries(tmp_path) == []


@pytest.mark.parametrize("stage", ["write", "rename"])
def test_a_live_writers_temporary_file_is_never_removed(mode, stage, tmp_path):
    path = tmp_path / "model.npz"
    model(0).save(path)
    proc, _ = start_child("named" if stage == "write" else mode, path, stage)
    theirs = temporaries(tmp_path)
    assert len(theirs) == 1
    model(1).save(path)                        # a concurrent save of the same path
    assert temporaries(tmp_path) == theirs     # leaves the other writer's file alone
    for a, b in zip(params_of(path), model(1).parameters()):
        np.testing.assert_array_equal(a, b)
    out, _ = proc.communicate("go\n", timeout=60)
    assert proc.returncode == 0 and "saved" in out
    assert temporaries(tmp_path) == []
    for a, b in zip(params_of(path), model(7).parameters()):   # the other writer finished
        np.testing.assert_array_equal(a, b)


def test_a_locked_temporary_file_is_kept_even_when_its_pid_looks_dead(tmp_path):
    """A writer in another pid namespace looks dead to kill(pid, 0); its lock protects it."""
    path = tmp_path / "model.npz"
    gone = dead_pid()
    proc, _ = start_child("named", path, "write", gone)
    theirs = temporaries(tmp_path)
    assert len(theirs) == 1 and f"-{gone}." in theirs[0]
    model(1).save(path)
    assert temporaries(tmp_path) == theirs
    out, _ = proc.communicate("go\n", timeout=60)
    assert proc.returncode == 0 and "saved" in out
    assert temporaries(tmp_path) == []


def test_only_stale_temporaries_of_the_same_target_are_removed(tmp_path):
    path = tmp_path / "model.npz"
    gone = dead_pid()
    files = {
        "dead": stale_name(path, gone),                                   # removed
        "alive": stale_name(path, os.getpid(), token="11112222"),         # our pid: kept
        "other_target": stale_name(tmp_path / "other.npz", gone),         # kept
        "prefix_target": stale_name(tmp_path / "model.npz.bak", gone),    # kept
        "not_ours": f".fastgd-model.npz.{_atomic._owner()}-{gone}.zz.tmp",  # kept
        "other_host_fresh": stale_name(path, gone, owner="abcdef"),       # kept (for now)
        "other_host_old": stale_name(path, gone, owner="abcdef", token="33334444"),
    }
    if _atomic._owner() == "abcdef":  # pragma: no cover - one host in 16 million
        pytest.skip("this host's owner tag is the test's 'other host'")
    for name in files.values():
        (tmp_path / name).write_bytes(b"partial")
    old = time.time() - _atomic.STALE_AFTER - 60
    os.utime(tmp_path / files["other_host_old"], (old, old))
    model(0).save(path)
    left = set(temporaries(tmp_path))
    assert left == {files[k] for k in ("alive", "other_target", "prefix_target", "not_ours",
                                       "other_host_fresh")}


def test_a_stale_temporary_name_that_is_not_a_file_is_left_alone(tmp_path):
    path = tmp_path / "model.npz"
    fifo = tmp_path / stale_name(path, dead_pid())
    os.mkfifo(fifo)                             # opening it must not block the save
    model(0).save(path)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


# ----------------------------------------------------------------------------- failures

@pytest.mark.parametrize("exc", [OSError("disk full"), KeyboardInterrupt(), ValueError("bad")])
def test_a_failed_write_keeps_the_old_file_and_leaves_nothing(mode, exc, tmp_path):
    path = tmp_path / "out.bin"
    path.write_bytes(b"old")
    with pytest.raises(type(exc)):
        with atomic_write(path) as fh:
            fh.write(b"new, half of it")
            raise exc
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.bin"]


def test_a_system_error_while_writing_names_the_target(mode, tmp_path):
    path = tmp_path / "out.bin"
    with pytest.raises(OSError) as info:
        with atomic_write(path):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(path)
    assert os.listdir(tmp_path) == []


def _error_cases(tmp_path):
    (tmp_path / "afile").write_bytes(b"x")
    (tmp_path / "adir").mkdir()
    return {"missing folder": (tmp_path / "nope" / "model.npz", FileNotFoundError),
            "parent is a file": (tmp_path / "afile" / "model.npz", NotADirectoryError),
            "target is a folder": (tmp_path / "adir", IsADirectoryError),
            "trailing slash": (str(tmp_path / "new") + os.sep, IsADirectoryError)}


@pytest.mark.parametrize("case", ["missing folder", "parent is a file", "target is a folder",
                                  "trailing slash"])
def test_errors_name_the_target_not_the_temporary_file(mode, case, tmp_path):
    path, kind = _error_cases(tmp_path)[case]
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(kind) as info:
        model().save(path)
    assert info.value.filename == str(path)
    assert ".fastgd" not in str(info.value) and str(path) in str(info.value)
    assert sorted(os.listdir(tmp_path)) == before


_READ_ONLY_CHILD = r"""
import os, sys
import numpy as np
from fastgd import _atomic, nn
if sys.argv[2] == "named":
    _atomic._O_TMPFILE = None
target = os.path.join(sys.argv[1], "model.npz")
try:
    nn.MLP([3, 4, 2], dtype=np.float64, seed=0).save(target)
except PermissionError as exc:
    assert exc.filename == target, exc.filename
    assert os.listdir(sys.argv[1]) == [], os.listdir(sys.argv[1])
    print("PermissionError names", exc.filename)
else:
    raise SystemExit("no PermissionError")
"""


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_a_read_only_folder_names_the_target(mode, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        if os.geteuid() != 0:
            with pytest.raises(PermissionError) as info:
                model().save(folder / "model.npz")
            assert info.value.filename == str(folder / "model.npz")
            assert os.listdir(folder) == []
            return
        # root writes into read-only folders: save from a child without the capability
        # that lets it (CAP_DAC_OVERRIDE), dropped by capsh (libcap)
        capsh = shutil.which("capsh")
        if capsh is None:
            pytest.skip("root without capsh cannot drop CAP_DAC_OVERRIDE")
        out = subprocess.run([capsh, "--drop=cap_dac_override,cap_dac_read_search", "--", "-c",
                              'exec "$0" "$@"', sys.executable, "-c", _READ_ONLY_CHILD,
                              str(folder), mode], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == f"PermissionError names {folder / 'model.npz'}"
    finally:
        folder.chmod(0o755)


def test_bad_path_types(tmp_path):
    with pytest.raises(TypeError, match="path must be a str or os.PathLike, got int"):
        model().save(3)
    with pytest.raises(ValueError, match="path is empty"):
        model().save("")
    with pytest.raises(ValueError, match="path contains a NUL character"):
        model().save(str(tmp_path / "a\0b.npz"))
    with pytest.raises(ValueError, match="path contains a NUL character"):
        fastgd.load(str(tmp_path / "a\0b.npz"))
    with pytest.raises(TypeError, match="target must be a str or os.PathLike, got NoneType"):
        with atomic_write(None, name="target"):
            pass  # pragma: no cover
    assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------------------- what is written

@pytest.mark.parametrize("path_type", [str, pathlib.Path, os.fsencode])
def test_path_types_and_contents(mode, path_type, tmp_path):
    path = tmp_path / "data.bin"
    with atomic_write(path_type(str(path))) as fh:
        fh.write(b"abc")
        fh.seek(0)
        fh.write(b"X")
    assert path.read_bytes() == b"Xbc"
    assert os.listdir(tmp_path) == ["data.bin"]


def test_a_long_file_name(mode, tmp_path):
    path = tmp_path / ("m" * 250 + ".npz")
    model(0).save(path)
    model(1).save(path)
    assert os.listdir(tmp_path) == [path.name]
    for a, b in zip(params_of(path), model(1).parameters()):
        np.testing.assert_array_equal(a, b)


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield 0o640
    os.umask(old)


def test_new_files_honour_the_umask(mode, umask_027, tmp_path):
    path = tmp_path / "model.npz"
    model().save(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == umask_027
    with atomic_write(tmp_path / "other.bin") as fh:
        fh.write(b"x")
    assert stat.S_IMODE(os.stat(tmp_path / "other.bin").st_mode) == umask_027


def test_the_temporary_file_is_renamed_complete(mode, tmp_path, monkeypatch):
    """The target is only ever written by renaming a complete, synced file onto it."""
    seen, synced = [], []
    real_replace, real_fsync = os.replace, os.fsync

    def spy_replace(src, dst):
        seen.append((os.path.basename(src), os.path.getsize(src), os.fspath(dst)))
        return real_replace(src, dst)

    def spy_fsync(fd):
        synced.append(os.fstat(fd).st_size)
        return real_fsync(fd)

    monkeypatch.setattr(os, "replace", spy_replace)
    monkeypatch.setattr(os, "fsync", spy_fsync)
    path = tmp_path / "model.npz"
    model().save(path)
    assert len(seen) == 1
    name, size, dst = seen[0]
    assert re.fullmatch(r"\.fastgd-model\.npz\.[0-9a-f]{6}-[0-9]+\.[0-9a-f]{8}\.tmp", name)
    assert dst == str(path) and size == path.stat().st_size
    assert synced and synced[0] == size


# ----------------------------------------------------------------------------- every writer

def test_one_atomic_writer_in_the_package():
    """No module but _atomic makes temporary files or renames files into place."""
    pattern = re.compile(r"\btempfile\b|\bmkstemp\b|os\.replace\(|os\.rename\(|\.savefig\(\s*tmp")
    offenders = []
    for p in SRC.rglob("*.py"):
        code = [ln for ln in p.read_text().splitlines()    # doctest examples may use tempfile
                if not ln.lstrip().startswith((">>>", "..."))]
        if p.name != "_atomic.py" and any(pattern.search(ln) for ln in code):
            offenders.append(str(p.relative_to(SRC)))
    assert offenders == []


def test_demo_figures_use_the_writer(mode, umask_027, tmp_path):
    pytest.importorskip("matplotlib")
    from fastgd import demo
    from matplotlib.figure import Figure

    fig = Figure()
    fig.add_subplot().plot([0, 1], [1, 0])
    path = tmp_path / "fig.png"
    path.write_bytes(b"old")
    demo.save_png(fig, str(path), 50)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert stat.S_IMODE(os.stat(path).st_mode) == umask_027
    assert os.listdir(tmp_path) == ["fig.png"]
    with pytest.raises(FileNotFoundError) as info:
        demo.save_png(fig, str(tmp_path / "nope" / "fig.png"), 50)
    assert info.value.filename == str(tmp_path / "nope" / "fig.png")


def test_train_plot_uses_the_writer(mode, umask_027, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from fastgd.cli import main

    png = tmp_path / "loss.png"
    assert main(["train", "--quiet", "--epochs", "1", "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert stat.S_IMODE(os.stat(png).st_mode) == umask_027        # mkstemp made it 0600
    pdf = tmp_path / "loss.pdf"
    assert main(["train", "--quiet", "--epochs", "1", "--plot", str(pdf)]) == 0
    assert pdf.read_bytes()[:5] == b"%PDF-"                      # the format follows the name
    assert sorted(os.listdir(tmp_path)) == ["loss.pdf", "loss.png"]
    capsys.readouterr()
    for bad, message in ((tmp_path / "nope" / "loss.png", "No such file or directory"),
                         (tmp_path / "loss.xyz", "not .xyz")):
        assert main(["train", "--quiet", "--epochs", "1", "--plot", str(bad)]) == 2
        err = capsys.readouterr().err
        assert f"cannot write {bad}" in err and message in err and ".fastgd" not in err
    assert sorted(os.listdir(tmp_path)) == ["loss.pdf", "loss.png"]
