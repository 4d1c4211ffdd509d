"""File input/output for the CLI: finding inputs, reading images, atomic writes (videos: :mod:`dav2_core.video`).

Layouts: images are returned as [H,W,3] float32 RGB in 0..1 (numpy). Depth written here is already
normalised (0..1, near = 1) or raw float32 for ``.npy``.
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
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal
from collections.abc import Callable, Iterator

import numpy as np

#: File extensions read as images / videos (lower case; matching ignores case).
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv")

InputKind = Literal["image", "video"]

#: What the CLI (and ``dav2 batch``) appends to an input's stem for each of its outputs, by output name: the
#: one list of output names. Images: 16-bit PNG, colour PNG, raw ``.npy``, raw EXR; videos: the depth video
#: and the folder of its frames.
OUTPUT_SUFFIXES: dict[str, str] = {
    "depth": "_depth.png",
    "color": "_depth_color.png",
    "npy": "_depth.npy",
    "exr": "_depth.exr",
    "glb": "_depth.glb",
    "video": "_depth.mp4",
    "frames": "_depth_frames",
}
_OUTPUT_FILE_SUFFIXES = tuple(
    suffix for name, suffix in OUTPUT_SUFFIXES.items() if name not in ("exr", "glb", "frames")
)


class InputError(ValueError):
    """A command-line input that cannot be used (missing path, unsupported file, nothing found)."""


class ImageReadError(ValueError):
    """An image file that cannot be decoded."""


@dataclass(frozen=True)
class InputFile:
    """One file to process. ``out_stem``: output path without suffix, relative to the output folder."""

    path: Path
    kind: InputKind
    out_stem: Path


def input_kind(path: Path) -> InputKind | None:
    """'image' or 'video' from the file extension (case-insensitive), None for other files."""
    suffix = path.suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        return "image"
    if suffix in VIDEO_EXTENSIONS:
        return "video"
    return None


def output_path(out_dir: Path, out_stem: Path, name: str) -> Path:
    """Where output ``name`` (an ``OUTPUT_SUFFIXES`` key) of the input with ``out_stem`` goes in ``out_dir``."""
    base = out_dir / out_stem
    return base.with_name(base.name + OUTPUT_SUFFIXES[name])


def is_own_output(path: Path, out_dir: Path | None) -> bool:
    """True when ``path`` lies inside ``out_dir`` and is named like one of the CLI's outputs: a file ending
    in one of the image/video ``OUTPUT_SUFFIXES`` or anything inside a ``*_depth_frames`` folder
    (case-insensitive)."""
    if out_dir is None or out_dir not in path.parents:
        return False
    name = path.name.lower()
    inner = path.relative_to(out_dir).parts[:-1]
    frames = OUTPUT_SUFFIXES["frames"]
    return name.endswith(_OUTPUT_FILE_SUFFIXES) or any(part.lower().endswith(frames) for part in inner)


def collect_inputs(
    paths: list[str | os.PathLike[str]], recursive: bool = False, exclude: str | os.PathLike[str] | None = None
) -> list[InputFile]:
    """Expand command-line paths into the files to process, in the given order.

    A file is taken as it is (its extension must be an image or video one). A folder contributes its
    image and video files sorted by name; with ``recursive`` also those of its subfolders (outputs then
    mirror the subfolder layout). Files inside ``exclude`` (the output folder) that are named like this
    CLI's outputs (:func:`is_own_output`: ``<stem>_depth.png``, ``_depth_color.png``, ``_depth.npy``,
    ``_depth.mp4``, ``<stem>_depth_frames/``) are skipped, so a re-run never reads its own results; other
    files there are inputs like any others, so the output folder may be the input folder
    (``dav2 DIR -o DIR``) or inside it. A file named twice is processed once. When two inputs would
    write the same output name (``a.jpg`` and ``a.png``) both keep their extension in it (``a_jpg``).
    Raises InputError for a missing path, an unsupported file or when nothing is found (saying when a
    folder only holds earlier outputs).
    """
    excluded = Path(exclude).resolve() if exclude is not None else None
    found: list[tuple[Path, InputKind, Path]] = []
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.exists():
            raise InputError(f"input not found: {path}")
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            candidates = sorted(p for p in path.glob(pattern) if p.is_file() and input_kind(p) is not None)
            files = [p for p in candidates if not is_own_output(p.resolve(), excluded)]
            if not files:
                hint = "" if recursive else " (use --recursive to include subfolders)"
                if candidates:
                    hint = (
                        f": its {len(candidates)} image/video files are all outputs of an earlier run"
                        f" ({', '.join('*' + s for s in _OUTPUT_FILE_SUFFIXES)}) in the output folder {excluded}"
                    )
                raise InputError(f"no image or video files in folder {path}{hint}")
            entries = [(p, p.relative_to(path).with_suffix("")) for p in files]
        else:
            if input_kind(path) is None:
                raise InputError(
                    f"{path}: unsupported file type {path.suffix or '(no extension)'!r}; images: "
                    f"{' '.join(IMAGE_EXTENSIONS)}; videos: {' '.join(VIDEO_EXTENSIONS)}"
                )
            entries = [(path, Path(path.stem))]
        for file, stem in entries:
            key = file.resolve()
            if key in seen:
                continue
            seen.add(key)
            found.append((file, input_kind(file), stem))  # type: ignore[arg-type]
    result = unique_output_stems(found)
    if not result:
        raise InputError("no input files given")
    return result


def unique_output_stems(found: list[tuple[Path, InputKind, Path]]) -> list[InputFile]:
    """(file, kind, output stem) -> InputFiles; inputs that would share an output name (``a.jpg`` and
    ``a.png``) both keep their extension in it (``a_jpg``, ``a_png``). Order is kept."""
    counts: dict[tuple[Path, str], int] = {}
    for _, kind, stem in found:
        counts[(stem, kind)] = counts.get((stem, kind), 0) + 1
    result = []
    for file, kind, stem in found:
        if counts[(stem, kind)] > 1:
            stem = stem.with_name(f"{stem.name}_{file.suffix.lstrip('.').lower()}")
        result.append(InputFile(file, kind, stem))
    return result


# ------------------------------------------------------------------------------------------ images
_ROTATED_ORIENTATIONS = {5, 6, 7, 8}  # EXIF orientations that swap width and height


#: Largest image the pack decodes, in pixels: 16384 x 16384 (268 MP; a 96 MP photo for tiled depth is well
#: within). A file above it is refused before any pixel is decoded (a "decompression bomb": a small PNG can
#: claim 100000 x 100000 pixels). It replaces Pillow's own limit (a "DOS attack" warning from 89 MP, an error
#: from 179 MP) while we read, and also bounds what OpenCV decodes.
MAX_IMAGE_PIXELS = 1 << 28


class ImageTooLargeError(ImageReadError):
    """An image whose size (as its header states) exceeds :data:`MAX_IMAGE_PIXELS`; ``reason`` is the message
    without the path, for callers that name the file their own way."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.reason = reason


def check_pixels(width: int, height: int, path: str | os.PathLike[str]) -> None:
    """ImageTooLargeError when an image's size exceeds :data:`MAX_IMAGE_PIXELS`."""
    if width * height > MAX_IMAGE_PIXELS:
        raise ImageTooLargeError(
            path,
            f"the image is {width}x{height} pixels ({width * height / 1e6:.0f} MP); the limit is "
            f"{MAX_IMAGE_PIXELS / 1e6:.0f} MP (e.g. 16384x16384), so it is not decoded. Scale it down first",
        )


@contextlib.contextmanager
def open_image(path: str | os.PathLike[str]) -> Iterator[object]:
    """Pillow's lazy open (the header only) under our pixel limit instead of Pillow's: yields the image;
    ImageReadError above :data:`MAX_IMAGE_PIXELS`; Pillow's own errors (OSError, ValueError) pass through."""
    from PIL import Image  # matplotlib's own dependency; lazy so plain engine users do not import it

    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # Pillow's check runs in open(); ours follows at once, before any decoding
    try:
        image = Image.open(path)
    finally:
        Image.MAX_IMAGE_PIXELS = saved
    with image:
        check_pixels(*image.size, path)
        yield image


def probe_image_size(path: Path) -> tuple[int, int] | None:
    """(height, width) of an image as it will be decoded (EXIF rotation applied), from its header only.

    Uses Pillow's lazy open (no pixel decoding). None when Pillow cannot read the header; ImageReadError
    when the header claims more than :data:`MAX_IMAGE_PIXELS`.
    """
    try:
        with open_image(path) as image:
            width, height = image.size
            if image.getexif().get(0x0112) in _ROTATED_ORIENTATIONS:
                width, height = height, width
    except ImageReadError:
        raise
    except (OSError, ValueError, SyntaxError):  # PIL raises these for unknown/corrupt headers
        return None
    return height, width


def read_image(path: Path) -> np.ndarray:
    """Decode an image file -> [H,W,3] float32 RGB in 0..1.

    8- and 16-bit files keep their precision (16-bit / 65535); grey is repeated to RGB, alpha dropped,
    EXIF rotation applied (OpenCV's IMREAD_COLOR rules). Float TIFFs are clipped to 0..1, NaN -> 0.
    Raises ImageReadError naming the file when it cannot be decoded, is larger than
    :data:`MAX_IMAGE_PIXELS`, or is a JPEG with corrupt data (see :func:`_check_jpeg_data`): OpenCV would decode those with grey blocks and only a warning.
    """
    import cv2  # lazy, like every OpenCV use in the engine: ~32 MB resident that a server pays only once used

    try:
        data = np.fromfile(path, dtype=np.uint8)  # works with non-ASCII paths, unlike cv2.imread on Windows
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot read the file ({exc.strerror or exc})") from None
    probe_image_size(path)  # ImageReadError above MAX_IMAGE_PIXELS, before OpenCV decodes anything
    if data[:2].tobytes() == _JPEG_START:
        _check_jpeg_data(data, path)  # before OpenCV, which would decode a damaged JPEG with a warning
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH) if data.size else None
    if bgr is None:
        raise ImageReadError(f"{path}: not a readable image (empty, truncated or not an image file)")
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    if rgb.dtype == np.uint8:
        return rgb.astype(np.float32) / np.float32(255.0)
    if rgb.dtype == np.uint16:
        return rgb.astype(np.float32) / np.float32(65535.0)
    return np.clip(np.nan_to_num(rgb.astype(np.float32), nan=0.0), 0.0, 1.0)


_JPEG_START = b"\xff\xd8"
#: libjpeg errors about features a JPEG decoder may lack (not about damage): such files are left to OpenCV.
_JPEG_UNSUPPORTED = (
    "Unsupported JPEG process",
    "Unsupported JPEG data precision",
    "Unsupported color conversion",
    "not supported",
    "omitted at compile time",
    "Not implemented",
    "Insufficient memory",
)


def _check_jpeg_data(data: np.ndarray, path: Path) -> None:
    """Raise ImageReadError when a JPEG's compressed data is corrupt.

    libjpeg treats damaged entropy-coded data ("Corrupt JPEG data: premature end of data segment",
    invalid markers) as a *warning*: OpenCV and Pillow decode such a file, with the rest of the image
    grey, and Pillow only fails for some of them. ``simplejpeg`` (libjpeg-turbo) in strict mode stops at
    the first warning. A greyscale decode is enough (every coefficient is still entropy-decoded): a few
    ms per megapixel.
    """
    import simplejpeg  # lazy: only the CLI reads image files

    try:
        simplejpeg.decode_jpeg(data, colorspace="GRAY", fastdct=True, fastupsample=True, strict=True)
    except ValueError as exc:
        if any(text in str(exc) for text in _JPEG_UNSUPPORTED):
            return
        raise ImageReadError(
            f"{path}: corrupt JPEG data ({exc}); decoding it would give an image that is partly grey"
        ) from None


def group_by_size(sizes: list[tuple[int, int]]) -> list[list[int]]:
    """Indices grouped by equal (H, W), groups in order of first appearance, indices ascending in each."""
    groups: dict[tuple[int, int], list[int]] = {}
    for index, size in enumerate(sizes):
        groups.setdefault(size, []).append(index)
    return list(groups.values())


# ------------------------------------------------------------------------------------------ writing
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
