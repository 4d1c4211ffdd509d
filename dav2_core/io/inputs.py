"""Input discovery for the CLI and ``dav2 batch``: which files to process (:func:`collect_inputs`) and where
each of their outputs goes (:data:`OUTPUT_SUFFIXES`, the one list of output file names; :func:`output_path`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

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
