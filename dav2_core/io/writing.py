"""Writing files: atomic writes (PNG, ``.npy``, any bytes), the owner-marked temporaries they go through, and
the clean-up of temporaries a killed run left behind.

Depth written here is already normalised (0..1, near = 1) or raw float32 for ``.npy``.
Every file is written atomically: to a hidden temporary file in the target folder, then
``os.replace``d over the final name, so an interrupted run never leaves a half-written output.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import BinaryIO
from collections.abc import Callable, Iterator

import numpy as np

#: Marks the temporary files and folders this package creates beside its outputs and in its caches:
#: ``<prefix>dav2tmp-<pid>-<host tag>-<random><suffix>``, so a later run can tell whose they are.
TEMP_MARK = "dav2tmp"
#: A temporary whose owner is known to be dead (this host, no such process) is removed once it has been
#: untouched this long (seconds)...
DEAD_OWNER_GRACE = 30.0
#: ...and one whose owner cannot be checked (written on another host or by an older version) once it has
#: been untouched longer than any run could keep a temporary open without writing to it (seconds).
STALE_AFTER = 24 * 3600.0
_OWNED = re.compile(rf"{TEMP_MARK}-(\d+)-([0-9a-f]{{8}})-")


@functools.lru_cache(maxsize=1)
def _host_tag() -> str:
    """This machine and PID namespace (containers sharing a folder and a host name differ), 8 hex digits."""
    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        namespace = 0
    return hashlib.sha1(f"{socket.gethostname()}:{namespace}".encode()).hexdigest()[:8]


def temp_prefix(prefix: str) -> str:
    """``prefix`` + this process's owner mark, for ``tempfile.mkstemp`` / ``mkdtemp`` (see :func:`clean_stale_temps`)."""
    return f"{prefix}{TEMP_MARK}-{os.getpid()}-{_host_tag()}-"


def _alive(pid: int) -> bool | None:
    """Whether a process of this host runs ``pid`` (None: cannot tell here)."""
    try:
        import psutil

        return bool(psutil.pid_exists(pid))
    except ImportError:
        pass
    if os.name != "posix":
        return None  # os.kill(pid, 0) would terminate the process on Windows
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    except OSError:
        return None
    return True


def _untouched_for(path: Path, now: float) -> float:
    """Seconds since ``path`` (or, for a folder, anything directly in it) was last modified."""
    newest = path.lstat().st_mtime
    if path.is_dir() and not path.is_symlink():
        with os.scandir(path) as entries:
            for entry in entries:
                try:
                    newest = max(newest, entry.stat(follow_symlinks=False).st_mtime)
                except OSError:
                    pass
    return now - newest


def clean_stale_temps(folder: str | os.PathLike[str], legacy: tuple[str, ...] = ()) -> list[Path]:
    """Remove the temporaries a killed run left in ``folder`` (kill -9, SIGTERM, a crash); returns them.

    A ``.`` entry carrying :data:`TEMP_MARK` goes when its owner process is dead (checked on this host and
    PID namespace only) and it was untouched for :data:`DEAD_OWNER_GRACE`; a marked one of another host, or
    one named with a ``legacy`` prefix (older versions wrote no owner), when untouched for
    :data:`STALE_AFTER`. A live owner's files are never touched. Errors are ignored (best effort).
    """
    removed: list[Path] = []
    folder = Path(folder)
    now = time.time()
    try:
        entries = [e for e in os.scandir(folder) if e.name.startswith(".")]
    except OSError:
        return removed
    for entry in entries:
        match = _OWNED.search(entry.name)
        if match is None and not entry.name.startswith(legacy or ("\0",)):
            continue
        path = Path(entry.path)
        try:
            age = _untouched_for(path, now)
            if match is None or match.group(2) != _host_tag():
                stale = age > STALE_AFTER
            else:
                pid = int(match.group(1))
                alive = True if pid == os.getpid() else _alive(pid)
                stale = (alive is False and age > DEAD_OWNER_GRACE) or (alive is None and age > STALE_AFTER)
            if not stale:
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(path)
        except OSError:
            continue
    return removed


def _temp_path(path: Path, suffix: str = ".tmp") -> Path:
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=temp_prefix(f".{path.name}."), suffix=suffix)
    os.close(fd)
    return Path(name)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path``, on any error it is deleted.

    ``suffix`` lets writers that pick the format from the name (cv2.VideoWriter) see the right one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = _temp_path(path, suffix)
    try:
        yield temp
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def check_writable(path: str | os.PathLike[str]) -> Path:
    """Fail before a long run when ``path`` could not be written at its end: OSError naming the path and the
    reason (a folder, or a folder that cannot be created or written to). Creates the folder; writes nothing."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; give a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _temp_path(path).unlink()
    except OSError as exc:
        raise OSError(f"cannot write {path} ({exc.strerror or exc}); choose a path you can write to") from None
    return path


def atomic_write(path: str | os.PathLike[str], write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write(file)`` on a temporary file, then move it over ``path`` (never a partial file)."""
    with atomic_path(path) as temp:
        with open(temp, "wb") as file:
            write(file)
    return Path(path)


def write_png(path: str | os.PathLike[str], array: np.ndarray) -> Path:
    """Atomically write a PNG: [H,W] uint8/uint16 grey, or [H,W,3] uint8 in **RGB** order."""
    import cv2

    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".png", array)
    if not ok:
        raise ValueError(f"{path}: OpenCV could not encode a {array.dtype} array of shape {array.shape} as PNG")
    return atomic_write(path, lambda f: f.write(encoded.tobytes()))


def write_npy(path: str | os.PathLike[str], array: np.ndarray) -> Path:
    """Atomically write ``array`` as a ``.npy`` file (``numpy.load`` reads it back)."""
    return atomic_write(path, lambda f: np.save(f, array, allow_pickle=False))


def to_uint16(norm01: np.ndarray) -> np.ndarray:
    """0..1 values (any shape) -> uint16 0..65535, rounded; NaN -> 0."""
    return np.rint(np.clip(np.nan_to_num(norm01, nan=0.0), 0.0, 1.0) * 65535.0).astype(np.uint16)


def to_uint8(values01: np.ndarray) -> np.ndarray:
    """0..1 values (any shape, e.g. RGB [...,3]) -> uint8 0..255, rounded; NaN -> 0."""
    return np.rint(np.clip(np.nan_to_num(values01, nan=0.0), 0.0, 1.0) * 255.0).astype(np.uint8)
