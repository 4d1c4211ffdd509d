"""On-disk cache of what engines build from a model (ONNX exports, quantised files, compiled blobs).

An entry is a folder named after its key (checkpoint sha256 + shape + precision + backend + backend
version + export version) holding the built files and a ``manifest.json`` with the full key and each
file's size and sha256. An entry is only used when its manifest matches the key and every file matches
its recorded size and hash; anything else (stale, truncated, corrupt, half-written) is rebuilt. Entries
are built in a private temporary folder and renamed into place (atomic on one file system), so a crash
never leaves a half-written entry that looks complete.

An unwritable cache folder is not an error: the engine runs without caching (one warning per folder),
building into a temporary folder that is removed when the cache object goes away.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import uuid
import weakref
from pathlib import Path
from collections.abc import Callable, Mapping

from ..io import clean_stale_temps, temp_prefix
from .export import file_sha256

log = logging.getLogger(__name__)
MANIFEST = "manifest.json"
_WARNED: set[str] = set()


def default_cache_dir() -> Path:
    """$DAV2_ENGINE_CACHE, else ~/.cache/dav2/engines."""
    return Path(os.environ.get("DAV2_ENGINE_CACHE", Path.home() / ".cache" / "dav2" / "engines")).expanduser()


def _entry_name(key: Mapping[str, str]) -> str:
    digest = hashlib.sha256(json.dumps(dict(key), sort_keys=True).encode()).hexdigest()[:16]
    readable = "-".join(str(key.get(k, "")) for k in ("backend", "encoder", "shape", "precision") if key.get(k))
    return f"{readable}-{digest}".replace(os.sep, "_")


class EngineCache:
    """Folder of built engine files; ``root=None`` or an unwritable folder: a temporary, uncached one."""

    def __init__(self, root: str | os.PathLike[str] | None) -> None:
        self.root: Path | None = None
        if root is not None:
            candidate = Path(root).expanduser()
            try:
                candidate.mkdir(parents=True, exist_ok=True)
                probe = candidate / f".probe-{uuid.uuid4().hex}"
                probe.write_bytes(b"")
                probe.unlink()
                self.root = candidate
                clean_stale_temps(candidate, legacy=(".build-",))  # builds of killed runs (can be 100s of MB)
            except OSError as exc:
                if str(candidate) not in _WARNED:
                    _WARNED.add(str(candidate))
                    log.warning(
                        "engine cache folder %s is not writable (%s); running without a cache "
                        "(exports and compiled engines are rebuilt every time)",
                        candidate,
                        exc,
                    )
        self._scratch: Path | None = None
        if self.root is None:
            self._scratch = Path(tempfile.mkdtemp(prefix="dav2-engines-"))
            self._finalizer = weakref.finalize(self, shutil.rmtree, self._scratch, True)

    @property
    def persistent(self) -> bool:
        """True when entries survive this process (a writable cache folder)."""
        return self.root is not None

    @property
    def folder(self) -> Path:
        """Where entries live (the cache folder, or the temporary one)."""
        return self.root if self.root is not None else self._scratch

    def subfolder(self, name: str) -> Path:
        """A folder for a runtime's own cache (OpenVINO blobs, TensorRT engines) under this cache."""
        path = self.folder / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def valid(self, entry: Path, key: Mapping[str, str]) -> bool:
        """True when ``entry``'s manifest matches ``key`` and every file its recorded size and sha256."""
        try:
            manifest = json.loads((entry / MANIFEST).read_text())
            if manifest.get("key") != dict(key) or not manifest.get("files"):
                return False
            for name, (size, sha) in manifest["files"].items():
                path = entry / name
                if path.stat().st_size != size or file_sha256(path) != sha:
                    return False
        except (OSError, ValueError, TypeError, AttributeError):
            return False
        return True

    def get(self, key: Mapping[str, str], build: Callable[[Path], None]) -> Path:
        """The folder of a valid entry for ``key``, built by ``build(folder)`` when missing, stale or corrupt."""
        entry = self.folder / _entry_name(key)
        if entry.is_dir() and self.valid(entry, key):
            return entry
        if entry.exists():
            log.warning("engine cache entry %s is stale or corrupt; rebuilding it", entry)
        staging = Path(tempfile.mkdtemp(prefix=temp_prefix(".build-"), dir=self.folder))
        try:
            build(staging)
            files = {p.name: (p.stat().st_size, file_sha256(p)) for p in staging.iterdir() if p.is_file()}
            (staging / MANIFEST).write_text(json.dumps({"key": dict(key), "files": files}, indent=1))
            self.discard(entry)
            try:
                os.replace(staging, entry)
            except OSError:  # another process put a fresh entry there first: use ours only if theirs is bad
                if not self.valid(entry, key):
                    raise
                shutil.rmtree(staging, ignore_errors=True)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return entry

    def discard(self, entry: Path) -> None:
        """Remove an entry (e.g. one a runtime refused to load)."""
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        elif entry.exists():
            entry.unlink(missing_ok=True)
