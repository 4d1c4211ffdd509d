"""Save Depth: 16-bit PNG, 32-bit float EXR and .npy with the depth's meaning in metadata; atomic writes.

Formats (one file per image for PNG/EXR: ``stem.ext`` for a single image, ``stem_00000.ext`` … for a
batch; one ``stem.npy`` holding the whole [B,H,W] batch):
- ``png16``: 16-bit greyscale, each image min-max scaled to 0..65535 (its own orientation kept: relative
  maps bright = near, metric maps bright = far). A PNG tEXt chunk ``dav2_depth`` holds JSON with kind,
  units, model, min and max, so ``value = min + pixel / 65535 · (max − min)`` (quantisation: range/65535).
- ``exr``: single channel ``Y``, float32, exact values. Written with the ``OpenEXR`` package if installed,
  else OpenCV when its build has the EXR codec (``OPENCV_IO_ENABLE_OPENEXR=1`` is set for it if unset);
  otherwise a RuntimeError says how to enable it. Metadata in a sidecar ``<file>.json``.
- ``npy``: float32 [B,H,W], exact; metadata in a sidecar ``<file>.json``.
Every file is first written to a temporary file in the target folder and renamed over the final name only
after all files of the call were written: on any failure no new or partial file is left behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from pathlib import Path
from typing import Literal

import numpy as np

from ..depth import DepthMap
from ..variants import UNITS_BY_KIND, units_for
from ..io import atomic_path, open_image, to_uint16

Format = Literal["png16", "exr", "npy"]
FORMATS: tuple[str, ...] = ("png16", "exr", "npy")
EXTENSIONS: dict[str, str] = {"png16": ".png", "exr": ".exr", "npy": ".npy"}
META_KEY = "dav2_depth"

EXR_HELP = (
    "EXR writing is not available in this Python: install the OpenEXR package (pip install OpenEXR), or use"
    " an OpenCV build with the OpenEXR codec and start Python/ComfyUI with the environment variable"
    " OPENCV_IO_ENABLE_OPENEXR=1 (the opencv-python 5.x wheels have no EXR codec). png16 and npy need nothing extra."
)


def exr_backend() -> str | None:
    """'openexr' (the OpenEXR package), 'opencv' (cv2 with a working EXR codec) or None."""
    try:
        import OpenEXR  # noqa: F401

        return "openexr"
    except ImportError:
        pass
    os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")  # read by OpenCV on its first EXR use
    import cv2

    try:
        ok, _ = cv2.imencode(".exr", np.zeros((1, 1), np.float32))
    except cv2.error:
        return None
    return "opencv" if ok else None


def _meta(depth: DepthMap, fmt: str, **extra: object) -> dict:
    return {"kind": depth.kind, "units": depth.units, "model": depth.model, "format": fmt, **extra}


def _write_json(path: Path, meta: dict) -> None:
    path.write_text(json.dumps(meta, indent=1), encoding="utf-8")


def _write_png16(path: Path, values: np.ndarray, meta: dict) -> None:
    from PIL import Image, PngImagePlugin

    lo, hi = float(values.min()), float(values.max())
    scaled = (values - lo) / (hi - lo) if hi > lo else np.zeros_like(values)
    pixels = to_uint16(scaled)
    info = PngImagePlugin.PngInfo()
    info.add_text(META_KEY, json.dumps({**meta, "min": lo, "max": hi}))
    Image.fromarray(pixels).save(path, format="PNG", pnginfo=info)


def _write_exr(path: Path, values: np.ndarray, meta: dict, backend: str) -> None:
    if backend == "openexr":
        import OpenEXR

        header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage, META_KEY: json.dumps(meta)}
        with OpenEXR.File(header, {"Y": np.ascontiguousarray(values, dtype=np.float32)}) as f:
            f.write(str(path))
    else:
        import cv2

        try:
            ok = cv2.imwrite(str(path), values.astype(np.float32))
        except cv2.error as err:
            raise RuntimeError(f"OpenCV could not write {path} ({err}); {EXR_HELP}") from err
        if not ok:
            raise RuntimeError(f"OpenCV could not write {path}; {EXR_HELP}")


def save_depth(depth: DepthMap, path_stem: str | os.PathLike[str], fmt: Format = "png16") -> list[Path]:
    """Write ``depth`` ([B,H,W]) as ``fmt`` next to ``path_stem`` → the written paths (sidecars included).

    ``path_stem`` is the output path without extension (a trailing extension of the chosen format is
    accepted); missing folders are created; existing files are replaced. See the module docstring for
    layouts and metadata. png16 needs finite values (NaN/inf → ValueError: use exr or npy).
    """
    if not isinstance(depth, DepthMap):
        raise ValueError(f"depth must be a DepthMap, got {type(depth).__name__}")
    if fmt not in FORMATS:
        raise ValueError(f"unknown depth format {fmt!r}; choose one of {', '.join(FORMATS)}")
    ext = EXTENSIONS[fmt]
    stem = str(path_stem)
    if stem.lower().endswith(ext):
        stem = stem[: -len(ext)]
    if not stem or stem.endswith(("/", os.sep)):
        raise ValueError(f"path_stem {str(path_stem)!r} has no file name")
    values = depth.values.detach().float().cpu().numpy()
    b = values.shape[0]
    backend = None
    if fmt == "exr":
        backend = exr_backend()
        if backend is None:
            raise RuntimeError(EXR_HELP)
    if fmt == "png16" and not np.isfinite(values).all():
        raise ValueError("depth has NaN/inf values, which a 16-bit PNG cannot hold; save it as exr or npy")

    if fmt == "npy":
        targets = [Path(stem + ext)]
    else:
        targets = [Path(stem + ext)] if b == 1 else [Path(f"{stem}_{i:05d}{ext}") for i in range(b)]
    written: list[Path] = []
    with contextlib.ExitStack() as stack:  # all temporaries first; renamed together on success
        for i, target in enumerate(targets):
            temp = stack.enter_context(atomic_path(target, suffix=ext))
            if fmt == "png16":
                _write_png16(temp, values[i], _meta(depth, fmt))
            elif fmt == "exr":
                _write_exr(temp, values[i], _meta(depth, fmt), backend)  # type: ignore[arg-type]
            else:
                with open(temp, "wb") as f:
                    np.save(f, values, allow_pickle=False)
            written.append(target)
            if fmt != "png16":
                side = Path(str(target) + ".json")
                _write_json(
                    stack.enter_context(atomic_path(side)),
                    _meta(depth, fmt, shape=list(values.shape[1:] if fmt == "exr" else values.shape)),
                )
                written.append(side)
    return written


def _sidecar(path: Path) -> dict | None:
    side = Path(str(path) + ".json")
    return json.loads(side.read_text(encoding="utf-8")) if side.is_file() else None


def _from_meta(values: np.ndarray, meta: dict | None, path: Path) -> DepthMap:
    import torch

    if meta is None:
        warnings.warn(f"{path} has no dav2_depth metadata; loaded as relative depth", UserWarning, stacklevel=3)
        meta = {"kind": "relative", "units": "relative", "model": ""}
    kind = meta.get("kind")
    if kind not in UNITS_BY_KIND or meta.get("units", units_for(kind)) != units_for(kind):
        raise ValueError(
            f"{path}: its metadata says kind {kind!r} with units {meta.get('units')!r}; expected kind 'relative' "
            "(units 'relative') or 'metric' (units 'm'). The file was not written by Save Depth, or was edited."
        )
    t = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))
    return DepthMap(t if t.ndim == 3 else t[None], kind=kind, model=meta.get("model", ""))


def read_exr(path: Path) -> np.ndarray:
    """The depth channel of an EXR file (``Y``, else the first channel) as a float32 [H,W] array, read with
    :func:`exr_backend`; RuntimeError says how to enable EXR when nothing here reads it."""
    backend = exr_backend()
    if backend is None:
        raise RuntimeError(EXR_HELP.replace("writing", "reading"))
    if backend == "openexr":
        import OpenEXR

        with OpenEXR.File(str(path)) as f:
            channels = f.channels()
            name = "Y" if "Y" in channels else sorted(channels)[0]
            return np.array(channels[name].pixels, dtype=np.float32)
    import cv2

    values = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if values is None:
        raise ValueError(f"{path}: OpenCV could not read this EXR")
    return values[..., 0] if values.ndim == 3 else values


def load_depth(path: str | os.PathLike[str]) -> DepthMap:
    """Read a depth file written by :func:`save_depth` (.png, .exr, .npy) → DepthMap [B,H,W] float32.

    A 16-bit PNG is decoded with the min/max in its ``dav2_depth`` text chunk; files without metadata load
    as relative depth (PNG: pixel / max code, 0..1) with a warning.
    """
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{p}: no such file")
    suffix = p.suffix.lower()
    if suffix == ".png":
        with open_image(p) as im:  # ImageReadError (a ValueError) above io.MAX_IMAGE_PIXELS
            pixels = np.array(im)
            text = getattr(im, "text", {}).get(META_KEY)
        if pixels.ndim != 2:
            raise ValueError(f"{p}: expected a single-channel (greyscale) depth PNG, got shape {pixels.shape}")
        code_max = 65535.0 if pixels.dtype == np.uint16 else 255.0
        unit = pixels.astype(np.float64) / code_max
        if text is None:
            return _from_meta(unit, None, p)
        meta = json.loads(text)
        return _from_meta(meta["min"] + unit * (meta["max"] - meta["min"]), meta, p)
    if suffix == ".exr":
        return _from_meta(read_exr(p), _sidecar(p), p)
    if suffix == ".npy":
        values = np.load(p, allow_pickle=False)
        if values.ndim not in (2, 3):
            raise ValueError(f"{p}: expected a [H,W] or [B,H,W] array, got shape {values.shape}")
        return _from_meta(values, _sidecar(p), p)
    raise ValueError(f"{p}: unsupported depth file type {suffix!r}; use .png, .exr or .npy")
