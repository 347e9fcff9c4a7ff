"""The one atomic file writer: every file fastgd writes (models, figures, CLI outputs).

A file is written completely and flushed to disk before it takes the target's name, so a
reader sees the old file or the new one, never half of one, and an interrupted write
(an exception, Ctrl-C, ``kill -9``, a power cut) leaves the old file intact.

How the data reaches the target:

* On Linux, the data goes to an unnamed file in the target's folder (``O_TMPFILE``): if the
  writer dies, the kernel frees it and nothing is left on disk. When it is complete it is
  linked in under a temporary name and renamed over the target at once (``linkat`` cannot
  replace a name), so a name other than the target exists only for those two system calls.
* Elsewhere, or on file systems without ``O_TMPFILE``, the data goes to a named temporary
  file ``.fastgd-<target name>.<owner>-<pid>.<random>.tmp`` in the same folder.

Either way the writer holds an exclusive ``flock`` on its temporary file until the rename.
A writer killed while its temporary file had a name leaves that file behind; the next write
of the same target removes it. A temporary file is removed only when it is named for the
same target, no process holds its lock, and either its writer's process is gone (``<owner>``
tells whether its pid can be checked from here: same host, pid namespace and boot) or it has
not been modified for `STALE_AFTER` seconds. A live writer holds the lock, so its temporary
file is never removed (on file systems without working locks, a writer on another machine
that stalls for longer than `STALE_AFTER` could lose its file).

New files get the permissions a plain ``open(path, "w")`` would give them (0o666 minus the
umask), not ``mkstemp``'s 0o600.
"""
import contextlib
import errno
import hashlib
import io
import os
import re
import secrets
import socket
import stat
import time

from types import ModuleType
from typing import Any, Iterator, Optional, Union

fcntl: Optional[ModuleType]
try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None

__all__ = ["atomic_write", "STALE_AFTER"]

#: seconds after which an unlocked temporary file of an unidentifiable writer is stale
STALE_AFTER = 3600.0

_PREFIX = ".fastgd-"
_SUFFIX = ".tmp"
#: what follows ``.fastgd-<base>.`` in a temporary file's name: owner tag, pid, random part
_TAIL = re.compile(r"([0-9a-f]{6})-([0-9]+)\.([0-9a-f]{8})\.tmp")
#: a target name longer than this (in bytes) is shortened in its temporary file's name
_MAX_BASE = 200
#: the ``O_TMPFILE`` flag, or None to always use a named temporary file (tests set None)
_O_TMPFILE = getattr(os, "O_TMPFILE", None) if os.name == "posix" else None
#: errors of an ``O_TMPFILE`` open meaning "not supported here" (use a named file instead)
_NO_TMPFILE = {errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, getattr(errno, "ENOTSUP", -1)}

_owner_tag: Optional[str] = None

#: what `atomic_write` takes as a path
StrOrBytesPath = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]


@contextlib.contextmanager
def atomic_write(path: StrOrBytesPath, *, name: str = "path") -> Iterator[io.BufferedWriter]:
    """Write a file atomically: a binary file object whose data replaces ``path`` only
    when the ``with`` block completes.

    Parameters
    ----------
    path : str, bytes or os.PathLike
        The file to write (created or replaced). Its folder must exist.
    name : str, default "path"
        What the caller calls ``path``, for the ``TypeError`` of a path of the wrong type.

    Yields
    ------
    io.BufferedWriter
        Write (and seek) the file's content into it. Leave it open: it is flushed, synced
        to disk and renamed onto ``path`` when the block ends.

    Raises
    ------
    TypeError
        When ``path`` is not a str, bytes or os.PathLike.
    OSError
        When the file cannot be written (missing or read-only folder, ``path`` is a folder,
        disk full, ...); ``filename`` is ``path``, never the temporary file.

    Notes
    -----
    If the block raises, or the process is interrupted, ``path`` is left as it was and no
    temporary file is left behind (after ``kill -9``: none with ``O_TMPFILE``; otherwise
    the next write of ``path`` removes it). Stale temporary files of ``path`` from earlier,
    killed writers are removed when the write starts (see the module's documentation).
    A symbolic link at ``path`` is replaced by the new file, not followed.

    Examples
    --------
    >>> import os, tempfile
    >>> from fastgd._atomic import atomic_write
    >>> target = os.path.join(tempfile.mkdtemp(), "notes.txt")
    >>> with atomic_write(target) as fh:
    ...     _ = fh.write(b"complete or not at all")
    >>> open(target, "rb").read()
    b'complete or not at all'
    """
    shown = fspath(path, name)
    temp = _Temp(shown)
    assert temp.fd is not None  # open until committed or discarded
    try:
        with io.open(temp.fd, "wb", closefd=False) as fh:
            yield fh
        temp.commit()
    except OSError as exc:
        own = (None, temp.name)
        temp.discard()
        if exc.errno is not None and exc.filename in own:
            raise _naming(exc, shown) from None
        raise
    except BaseException:
        temp.discard()
        raise


def fspath(path: Any, name: str = "path") -> str:
    """``path`` as a str (bytes are decoded); ``TypeError`` naming ``name`` otherwise."""
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"{name} must be a str or os.PathLike, got {type(path).__name__}")
    path = os.fspath(path)
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not path:
        raise ValueError(f"{name} is empty")
    if "\0" in path:
        raise ValueError(f"{name} contains a NUL character: {path!r}")
    return path


class _Temp:
    """The temporary file behind one `atomic_write`: open on creation, then either
    `commit` (rename onto the target) or `discard`."""

    def __init__(self, shown: str) -> None:
        self.shown = shown
        self.target = os.path.abspath(shown)
        self.folder, base = os.path.split(self.target)
        if not base or shown.endswith(tuple(filter(None, (os.sep, os.altsep)))):
            raise _naming(OSError(errno.EISDIR, os.strerror(errno.EISDIR)), shown)
        self.base = _short_base(base)
        self.fd: Optional[int] = None
        self.name: Optional[str] = None    # the temporary file's current name (None while unnamed)
        _remove_stale(self.folder, self.base)
        try:
            if not self._open_unnamed():
                self._open_named()
        except OSError as exc:
            raise _naming(exc, shown) from None
        assert self.fd is not None  # both openers set it (or raise)
        _lock(self.fd)

    def _open_unnamed(self) -> bool:
        if _O_TMPFILE is None or not os.path.isdir("/proc/self/fd"):
            return False
        try:
            fd = os.open(self.folder, _O_TMPFILE | os.O_RDWR, 0o666)
        except OSError as exc:
            if exc.errno in _NO_TMPFILE:
                return False
            raise
        self.fd = fd
        return True

    def _open_named(self) -> None:
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) \
            | getattr(os, "O_BINARY", 0)
        for _ in range(100):
            name = os.path.join(self.folder, _temp_name(self.base))
            try:
                self.fd = os.open(name, flags, 0o666)
            except FileExistsError:
                continue
            self.name = name
            return
        raise FileExistsError(errno.EEXIST, "no free temporary file name")  # pragma: no cover

    def commit(self) -> None:
        """Sync the data, give it the target's name, sync the folder."""
        assert self.fd is not None  # open until committed or discarded
        try:
            os.fsync(self.fd)
            if self.name is None:
                self._link()
            assert self.name is not None  # _link names it (or raises)
            os.replace(self.name, self.target)
        except OSError as exc:
            raise _naming(exc, self.shown) from None
        self.name = None
        _sync_folder(self.folder)
        self._close()

    def _link(self) -> None:
        """Give the unnamed file a temporary name (``linkat`` with AT_SYMLINK_FOLLOW through
        /proc/self/fd: os.link takes that path only when given a dir_fd)."""
        dirfd = os.open(self.folder, getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY)
        try:
            for _ in range(100):
                name = _temp_name(self.base)
                try:
                    os.link(f"/proc/self/fd/{self.fd}", name, dst_dir_fd=dirfd,
                            follow_symlinks=True)
                except FileExistsError:
                    continue
                self.name = os.path.join(self.folder, name)
                return
            raise FileExistsError(errno.EEXIST, "no free temporary file name")  # pragma: no cover
        finally:
            os.close(dirfd)

    def discard(self) -> None:
        """Remove the temporary file's name (if it has one) and close it."""
        if self.name is not None:
            try:
                os.unlink(self.name)
            except OSError:
                pass
            self.name = None
        self._close()

    def _close(self) -> None:
        if self.fd is not None:
            fd, self.fd = self.fd, None
            os.close(fd)


def _naming(exc: OSError, path: str) -> OSError:
    """``exc`` as the same kind of OSError, about ``path``."""
    if exc.errno is None:
        return exc
    return OSError(exc.errno, exc.strerror or os.strerror(exc.errno), path)


def _short_base(base: str) -> str:
    """The target's name as it appears in its temporary files' names (shortened, with a
    hash of the whole, when too long to leave room for the rest)."""
    if len(os.fsencode(base)) <= _MAX_BASE:
        return base
    digest = hashlib.sha1(os.fsencode(base)).hexdigest()[:8]
    return base[:_MAX_BASE // 4] + "~" + digest


def _temp_name(base: str) -> str:
    return f"{_PREFIX}{base}.{_owner()}-{os.getpid()}.{secrets.token_hex(4)}{_SUFFIX}"


def _owner() -> str:
    """Six hex digits naming this host, pid namespace and boot: a pid in a temporary file's
    name can be checked with ``kill(pid, 0)`` only where this tag is the same."""
    global _owner_tag
    if _owner_tag is None:
        parts = [socket.gethostname(), "", ""]
        with contextlib.suppress(OSError):
            parts[1] = str(os.stat("/proc/self/ns/pid").st_ino)
        with contextlib.suppress(OSError), open("/proc/sys/kernel/random/boot_id") as fh:
            parts[2] = fh.read().strip()
        _owner_tag = hashlib.sha1("\0".join(parts).encode()).hexdigest()[:6]
    return _owner_tag


def _lock(fd: int) -> None:
    """Take an exclusive flock on ``fd`` (held until it is closed); best effort."""
    if fcntl is None:  # pragma: no cover - not POSIX
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        pass  # a file system without locks: stale files are then judged by pid and age


def _remove_stale(folder: str, base: str) -> None:
    """Remove the temporary files of target ``base`` in ``folder`` whose writer is gone."""
    if os.name != "posix":  # pragma: no cover - os.kill(pid, 0) terminates on Windows
        return
    head = f"{_PREFIX}{base}."
    try:
        with os.scandir(folder) as entries:
            names = [e.name for e in entries if e.name.startswith(head)]
    except OSError:
        return
    for name in names:
        m = _TAIL.fullmatch(name[len(head):])
        if m is not None:
            _remove_if_stale(os.path.join(folder, name), m.group(1) == _owner(),
                             int(m.group(2)))


def _remove_if_stale(path: str, same_owner: bool, pid: int) -> None:
    flags = os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0)
    try:  # open for writing where allowed: NFS emulates flock with write locks
        fd = os.open(path, os.O_RDWR | flags)
    except OSError:
        try:
            fd = os.open(path, os.O_RDONLY | flags)
        except OSError:
            return
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or _locked(fd):
            return
        gone = same_owner and not _alive(pid)
        if gone or time.time() - st.st_mtime > STALE_AFTER:
            try:
                os.unlink(path)
            except OSError:
                pass
    finally:
        os.close(fd)


def _locked(fd: int) -> bool:
    """Whether another open file holds a lock on ``fd``'s file (False when unknown)."""
    if fcntl is None:  # pragma: no cover - not POSIX
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    return False


def _alive(pid: int) -> bool:
    if pid <= 0:
        return True  # not a process id: never taken for a dead writer
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, belongs to someone else
    return True


def _sync_folder(folder: str) -> None:
    """Make the rename durable (best effort: not every system can sync a folder)."""
    if os.name != "posix":  # pragma: no cover
        return
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
