"""Measured ground truth for evaluation: depth or disparity maps, their readers and what "valid" means.

A :class:`GroundTruth` holds [B,H,W] float64 values with NaN where nothing was measured, and says what
they are:

- ``kind="depth"``: distance (metres when ``metric``, e.g. NYU's uint16 millimetres / 1000);
- ``kind="disparity"``: stereo disparity in pixels (Middlebury). Disparity is affine in inverse depth,
  ``1/Z = (d + doffs) / (f·B)``: with ``focal_baseline`` (f·B in pixel·metres) and ``doffs`` the map is
  metric; without them it is taken as ``1/Z ∝ d`` (doffs 0), so depth-space metrics are relative (AbsRel
  and delta do not depend on the unknown f·B, but an unknown doffs does bias them).

:meth:`GroundTruth.inverse_depth` is the disparity-space target the zero-shot protocol fits to and
:meth:`GroundTruth.depth` the depth the metrics compare with; both are NaN where invalid (not finite,
or inverse depth <= 0).

File readers (:func:`read_ground_truth`, ``kind="auto"`` decides by format):
- 16-bit PNG without metadata: depth, raw / ``scale`` metres (default 1000: millimetres, NYU; KITTI: 256), 0 = invalid;
- 8-bit PNG without metadata: disparity in pixels (Middlebury 2001-2006), raw / ``scale``, 0 = invalid;
- ``.pfm``: float disparity (Middlebury 2014), inf = invalid;
- ``.npz`` (key ``arr_0`` or its only array) and ``.npy`` / ``.exr`` without metadata: float arrays,
  inf/NaN = invalid - say ``kind`` (depth or disparity), the file cannot;
- files written by Save Depth (PNG text chunk or ``.json`` sidecar): metric DEPTH in metres. A relative
  map (a model's output) is refused: it is not a measurement.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from . import io
from .depth import DepthMap
from .effects.export import META_KEY, exr_backend, load_depth, read_exr

GtKind = Literal["depth", "disparity"]
#: ``kind`` choices of the readers: auto = decided by the file format (see the module docstring).
GT_KINDS = ("auto", "depth", "disparity")
#: Default raw-value scale per (kind, integer dtype): raw / scale = metres (depth) or pixels (disparity).
DEFAULT_SCALES = {("depth", "uint16"): 1000.0, ("disparity", "uint8"): 1.0, ("disparity", "uint16"): 1.0}
GT_SUFFIXES = (".png", ".pfm", ".npy", ".npz", ".exr")


@dataclass(frozen=True)
class GroundTruth:
    """Measured depth or disparity [B,H,W] float64 (NaN = not measured) and what it means (module docstring)."""

    values: torch.Tensor
    kind: GtKind = "depth"
    metric: bool = True
    focal_baseline: float | None = None
    doffs: float = 0.0
    source: str = ""

    def __post_init__(self) -> None:
        v = self.values
        if not isinstance(v, torch.Tensor) or v.ndim != 3 or min(v.shape) == 0:
            raise ValueError(f"ground truth must be a non-empty [B,H,W] map, got {getattr(v, 'shape', type(v))}")
        if self.kind not in ("depth", "disparity"):
            raise ValueError(f"ground-truth kind must be 'depth' or 'disparity', got {self.kind!r}")
        if self.focal_baseline is not None and not (math.isfinite(self.focal_baseline) and self.focal_baseline > 0):
            raise ValueError(f"focal_baseline (f·B, pixel·metres) must be > 0, got {self.focal_baseline}")

    @property
    def units(self) -> str:
        """Units of :meth:`depth`: 'm' for metric ground truth, 'relative' otherwise."""
        return "m" if self.metric else "relative"

    def inverse_depth(self) -> torch.Tensor:
        """[B,H,W] float64 inverse depth (1/m when metric, else ∝ disparity); NaN where invalid."""
        v = self.values.double()
        if self.kind == "depth":
            inv = 1.0 / v
        elif self.focal_baseline is not None:
            inv = (v + self.doffs) / self.focal_baseline
        else:
            inv = v + self.doffs
        return torch.where(torch.isfinite(inv) & (inv > 0) & torch.isfinite(v), inv, torch.full_like(inv, math.nan))

    def depth(self) -> torch.Tensor:
        """[B,H,W] float64 depth (metres when metric); NaN where invalid."""
        return 1.0 / self.inverse_depth()

    def valid(self) -> torch.Tensor:
        """[B,H,W] bool: measured pixels."""
        return torch.isfinite(self.inverse_depth())


def from_array(
    values: np.ndarray | torch.Tensor,
    kind: GtKind,
    scale: float = 1.0,
    zero_invalid: bool = True,
    focal_baseline: float | None = None,
    doffs: float = 0.0,
    source: str = "",
) -> GroundTruth:
    """GroundTruth from raw values [H,W] or [B,H,W]: value / ``scale`` (metres or pixels); non-finite values
    and (``zero_invalid``) zeros are invalid. Depth is metric; disparity is metric with ``focal_baseline``."""
    if kind not in ("depth", "disparity"):
        raise ValueError(f"say what the ground truth holds: kind 'depth' or 'disparity', got {kind!r}")
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"ground-truth scale must be > 0 (raw value / scale = metres or pixels), got {scale}")
    t = torch.as_tensor(np.asarray(values) if not isinstance(values, torch.Tensor) else values).double()
    if t.ndim == 2:
        t = t[None]
    t = t / scale
    if zero_invalid:
        t = torch.where(t == 0, torch.full_like(t, math.nan), t)
    metric = kind == "depth" or focal_baseline is not None
    return GroundTruth(t, kind, metric, focal_baseline, doffs, source)


class GroundTruthFileError(ValueError):
    """A ground-truth file that cannot be used; the message names the file and the problem, never its bytes."""


def read_pfm(path: Path, name: str | None = None) -> np.ndarray:
    """A single-channel PFM (``Pf``; ``PF`` keeps its first channel) as float32 [H,W], top row first (PFM
    stores the bottom row first). ``name``: the file in messages (default its path). GroundTruthFileError
    names the broken part of the header without quoting it."""
    label = name or str(path)
    with open(path, "rb") as f:
        header = f.readline(16).strip()
        if header not in (b"Pf", b"PF"):
            raise GroundTruthFileError(f"{label}: not a PFM file (its first line is not 'Pf' or 'PF')")
        dims = f.readline(256).split()
        while dims and dims[0].startswith(b"#"):
            dims = f.readline(256).split()
        try:
            width, height = (int(v) for v in dims)
        except ValueError:
            width = height = 0
        if width <= 0 or height <= 0:
            raise GroundTruthFileError(
                f"{label}: the PFM size line is not two positive integers 'width height'; the file is damaged "
                "or not a PFM"
            )
        try:
            scale = float(f.readline(256).strip())
        except ValueError:
            scale = math.nan
        if not math.isfinite(scale) or scale == 0:
            raise GroundTruthFileError(
                f"{label}: the PFM scale line is not a non-zero number (its sign gives the byte order); the file is "
                "damaged or not a PFM"
            )
        channels = 3 if header == b"PF" else 1
        expected = width * height * channels
        left = os.fstat(f.fileno()).st_size - f.tell()  # checked before reading: the size line may be huge
        if left != 4 * expected:
            raise GroundTruthFileError(
                f"{label}: PFM data is truncated ({left // 4} of {expected} values)"
                if left < 4 * expected
                else f"{label}: PFM data is longer than its size line ({width}x{height}) says"
            )
        values = np.frombuffer(f.read(4 * expected), dtype="<f4" if scale < 0 else ">f4")
    image = values.reshape(height, width, channels)[::-1]
    return np.ascontiguousarray(image[..., 0], dtype=np.float32)


def _png(path: Path) -> tuple[np.ndarray, str | None]:
    with io.open_image(path) as im:  # ImageReadError (a ValueError) above io.MAX_IMAGE_PIXELS
        return np.array(im), getattr(im, "text", {}).get(META_KEY)


def from_depth_map(depth: DepthMap, source: str = "") -> GroundTruth:
    """Metric depth (metres, e.g. a Save Depth file or a metric model's DEPTH used as reference) as ground
    truth; non-positive or non-finite metres are invalid. A relative map is refused: it is no measurement."""
    if not isinstance(depth, DepthMap):
        raise ValueError(f"expected a DepthMap, got {type(depth).__name__}")
    if not depth.is_metric:
        raise ValueError(
            f"{source or 'the ground-truth DEPTH'} holds relative depth (a model's output, units "
            "'relative'), not measured depth; use metric depth (metres) or a measured depth/disparity map"
        )
    return from_array(depth.values.detach().cpu(), "depth", zero_invalid=True, source=source or depth.model)


def from_image(
    image: torch.Tensor,
    kind: str = "auto",
    scale: float | None = None,
    focal_baseline: float | None = None,
    doffs: float = 0.0,
    source: str = "image",
) -> GroundTruth:
    """An IMAGE [B,H,W,C] 0..1 holding an 8-bit depth or disparity map (e.g. a Middlebury PNG through Load
    Image): the first channel x 255 is the file's code value, / ``scale`` (default 1) = pixels or metres;
    0 = invalid. ``kind`` auto = disparity (8-bit maps are disparity by convention)."""
    if not isinstance(image, torch.Tensor) or image.ndim not in (3, 4):
        raise ValueError(f"expected an IMAGE [B,H,W,C], got {getattr(image, 'shape', type(image))}")
    if kind not in GT_KINDS:
        raise ValueError(f"unknown ground-truth kind {kind!r}; choose one of {', '.join(GT_KINDS)}")
    codes = (image if image.ndim == 4 else image[None])[..., 0].detach().double().cpu() * 255.0
    return from_array(
        codes.round(),
        "disparity" if kind == "auto" else kind,
        1.0 if scale is None else scale,  # type: ignore[arg-type]
        True,
        focal_baseline,
        doffs,
        source,
    )


def read_ground_truth(
    path: str | Path,
    kind: str = "auto",
    scale: float | None = None,
    focal_baseline: float | None = None,
    doffs: float = 0.0,
    name: str | None = None,
) -> GroundTruth:
    """Read a ground-truth file (formats and defaults in the module docstring). ``scale``: raw value per
    metre (depth) or per pixel (disparity), None = the format's default. ``name``: how messages and the
    report call the file (default its path; the node passes the name the user typed, so the server's folders
    are not shown). ValueError names the file and the problem; it never quotes the file's bytes (a decoder's
    own message can, so those are replaced by the decoder's error type)."""
    p = Path(path)
    label = name or str(p)
    if kind not in GT_KINDS:
        raise ValueError(f"unknown ground-truth kind {kind!r}; choose one of {', '.join(GT_KINDS)}")
    if not p.is_file():
        raise GroundTruthFileError(f"ground-truth file {label} not found")
    suffix = p.suffix.lower()
    if suffix not in GT_SUFFIXES:
        raise GroundTruthFileError(
            f"{label}: unsupported ground-truth file type {suffix!r}; use one of {', '.join(GT_SUFFIXES)}"
        )
    try:
        return _read_file(p, suffix, kind, scale, dict(focal_baseline=focal_baseline, doffs=doffs, source=label))
    except GroundTruthFileError:
        raise
    except io.ImageTooLargeError as exc:  # our pixel limit: say so (the generic message below would hide it)
        raise GroundTruthFileError(f"{label}: {exc.reason}") from None
    except MemoryError:
        raise GroundTruthFileError(f"{label}: too large to read into memory") from None
    except Exception as exc:  # a decoder's message may quote the file (numpy quotes a bad .npy header)
        raise GroundTruthFileError(
            f"{label}: not a readable {suffix} ground truth ({type(exc).__name__}: the file is damaged or not "
            "what its name says)"
        ) from None


def _read_file(p: Path, suffix: str, kind: str, scale: float | None, extra: dict) -> GroundTruth:
    label = extra["source"]
    if suffix == ".png":
        raw, meta = _png(p)
        if meta is not None:
            return _saved_ground_truth(p, label)
        if raw.ndim != 2 or raw.dtype not in (np.uint8, np.uint16):
            raise GroundTruthFileError(
                f"{label}: expected a single-channel 8- or 16-bit PNG (depth or disparity), got "
                f"{raw.dtype} of shape {raw.shape}"
            )
        kind = ("depth" if raw.dtype == np.uint16 else "disparity") if kind == "auto" else kind
        default = DEFAULT_SCALES.get((kind, str(raw.dtype)), 1.0)
        return from_array(raw, kind, default if scale is None else scale, True, **extra)  # type: ignore[arg-type]
    if suffix in (".npy", ".exr") and Path(str(p) + ".json").is_file():
        return _saved_ground_truth(p, label)
    if suffix == ".pfm":
        raw = read_pfm(p, label)
        kind = "disparity" if kind == "auto" else kind
    else:
        raw = _float_array(p, label)
        if kind == "auto":
            raise GroundTruthFileError(
                f"{label} is a plain float array: say whether it holds depth (metres) or disparity "
                "(pixels) - kind 'depth' or 'disparity' (CLI: --gt-kind)"
            )
    return from_array(raw, kind, 1.0 if scale is None else scale, False, **extra)  # type: ignore[arg-type]


def _saved_ground_truth(p: Path, label: str) -> GroundTruth:
    """A Save Depth file as ground truth. load_depth's own message is replaced: it names the server path and
    quotes metadata values."""
    try:
        depth = load_depth(p)
    except (ValueError, KeyError, TypeError) as exc:
        raise GroundTruthFileError(
            f"{label}: its Save Depth metadata is damaged or was not written by Save Depth ({type(exc).__name__})"
        ) from None
    try:
        return from_depth_map(depth, label)
    except ValueError as exc:
        raise GroundTruthFileError(str(exc)) from None


def _float_array(path: Path, label: str) -> np.ndarray:
    suffix = path.suffix.lower()
    if suffix == ".exr":
        if exr_backend() is None:
            raise GroundTruthFileError(
                f"{label}: this Python cannot read EXR files; save the ground truth as .npy or .pfm"
            )
        return read_exr(path)
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            keys = list(archive.keys())
            key = "arr_0" if "arr_0" in keys else (keys[0] if len(keys) == 1 else None)
            if key is None:
                raise GroundTruthFileError(
                    f"{label} holds {len(keys)} arrays and none named arr_0; save the ground truth alone"
                )
            raw = archive[key]
    else:
        raw = np.load(path, allow_pickle=False)
    if raw.ndim not in (2, 3) or not np.issubdtype(raw.dtype, np.number):
        raise GroundTruthFileError(
            f"{label}: expected a numeric [H,W] or [B,H,W] array, got {raw.dtype} of shape {raw.shape}"
        )
    return raw


def describe(gt: GroundTruth) -> str:
    """One line: what the ground truth is, for reports."""
    what = "depth (m)" if gt.kind == "depth" else "disparity (px)"
    cal = f", f·B {gt.focal_baseline:g} px·m, doffs {gt.doffs:g} px" if gt.focal_baseline else ""
    rel = "" if gt.metric else ", uncalibrated: depth-space metrics are relative"
    valid = gt.valid()
    return f"{gt.source or 'ground truth'}: {what}{cal}{rel}; {int(valid.sum())} of {valid.numel()} pixels measured"


def read_mask(path: str | Path) -> torch.Tensor:
    """A valid-pixel mask file -> bool [H,W]: an image (PNG, ...; any channel > 0 = evaluate this pixel) or a
    ``.npy`` array (non-zero = evaluate)."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"mask file {p} not found")
    if p.suffix.lower() == ".npy":
        try:
            raw = np.load(p, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:  # numpy's message quotes a bad header
            raise ValueError(f"{p}: not a readable .npy mask ({type(exc).__name__})") from None
    else:
        from PIL import UnidentifiedImageError

        try:
            with io.open_image(p) as im:
                raw = np.array(im)
        except (UnidentifiedImageError, OSError) as exc:
            raise ValueError(f"{p}: not a readable mask image ({exc})") from None
    if raw.ndim == 3:
        raw = raw.any(axis=-1)
    if raw.ndim != 2:
        raise ValueError(f"{p}: a mask must be a [H,W] image or array, got shape {raw.shape}")
    return torch.from_numpy(np.ascontiguousarray(raw != 0))
