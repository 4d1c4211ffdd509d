"""Server side of the web depth preview: each depth map as an exact "packed 16-bit" PNG in ComfyUI's temp folder.

The browser (``web/depth_preview.js``, ``web/dav2_common.js``) fetches the PNG through ``/view``, reads its bytes with a canvas and
decodes every pixel back to depth, so hovering reads the value at full resolution while the colourised
preview is drawn downsampled. Packing, per image with ``lo``/``hi`` = min/max of its finite values::

    q = round(65535 * (d - lo) / (hi - lo))      R = q >> 8, G = q & 255, B = 0
    d ≈ lo + q / 65535 * (hi - lo)               |error| <= (hi - lo) / 131070

Non-finite pixels (NaN/Inf) are stored as q = 0 with B = 255 ("no value"). A constant image has
``hi == lo`` and q = 0 everywhere. OpenCV writes 8-bit RGB PNGs without alpha, gamma, sRGB or ICC chunks,
so a browser canvas returns the stored bytes unchanged.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from dav2_core.depth import DepthMap
from dav2_core.io import to_uint16

#: UI output key the web extension reads (one entry per previewed image).
UI_KEY = "dav2_depth"
#: UI output key of a text report the web extension shows on the node (Calibrate, Evaluate).
REPORT_UI_KEY = "dav2_report"
#: Only the first images of a batch are previewed (a video batch would otherwise write hundreds of files)...
MAX_PREVIEW_IMAGES = 16
#: ...and only while their pixels add up to this, 8 Mpx: one 4K map (packed ~11 MB, ~1 s to write) or four
#: 1080p ones. The first image is always previewed, whatever its size.
MAX_PREVIEW_PIXELS = 8_388_608
#: Subfolder of ComfyUI's temp directory holding the packed PNGs (ComfyUI empties it on start).
PREVIEW_SUBFOLDER = "dav2_preview"
Q_MAX = 65535
#: Per-image colour range ``(lo[B], hi[B])`` in the depth's units (tensors or float sequences).
DisplayRange = tuple[torch.Tensor | Sequence[float], torch.Tensor | Sequence[float]]


def pack_depth_u16(values: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Pack one depth map [H,W] (any float dtype, any units) into [H,W,3] uint8 RGB plus its (min, max).

    R/G hold the high/low byte of the 16-bit quantised value, B is 255 where the input was NaN/Inf.
    ``(min, max)`` are over the finite pixels (0.0, 0.0 when there are none).
    """
    if values.ndim != 2 or values.size == 0:
        raise ValueError(f"pack_depth_u16 needs a non-empty [H,W] depth map, got shape {values.shape}")
    d = values.astype(np.float64, copy=False)
    finite = np.isfinite(d)
    if finite.all():
        lo, hi = float(d.min()), float(d.max())
    elif finite.any():
        lo, hi = float(d[finite].min()), float(d[finite].max())
    else:
        lo = hi = 0.0
    span = hi - lo
    if span > 0.0:
        q = to_uint16((np.where(finite, d, lo) - lo) / span)
    else:  # constant depth (or nothing finite): q = 0, max == min
        q = np.zeros(d.shape, dtype=np.uint16)
    rgb = np.empty((*d.shape, 3), dtype=np.uint8)
    rgb[..., 0] = q >> 8
    rgb[..., 1] = q & 0xFF
    rgb[..., 2] = np.where(finite, 0, 255)
    return rgb, lo, hi


def preview_size(width: int, height: int, max_preview_side: int) -> tuple[int, int]:
    """Display size (w, h) with the long side at most ``max_preview_side`` px, aspect kept, at least 1 px."""
    if max_preview_side < 1:
        raise ValueError(f"max_preview_side must be >= 1, got {max_preview_side}")
    scale = min(1.0, max_preview_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _write_png(path: str, rgb: np.ndarray) -> None:
    import cv2  # lazy: not loaded with the pack at ComfyUI's start (README, Security: memory)

    # OpenCV wants BGR; write to a sibling temp name first so the browser never sees half a file.
    partial = path + ".part.png"
    # Level 1: the low byte of smooth 16-bit depth barely compresses; higher levels cost 1.5-3x the time for <5%.
    if not cv2.imwrite(partial, np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 1]):
        raise OSError(f"could not write the depth preview {partial!r} (is the ComfyUI temp folder writable?)")
    os.replace(partial, path)


def _display_bounds(display_range: DisplayRange, batch: int) -> tuple[list[float], list[float]]:
    """``display_range`` as two lists of ``batch`` finite floats with lo <= hi, or a ValueError."""
    try:
        lo_values, hi_values = display_range
    except (TypeError, ValueError):
        raise ValueError("display_range must be a pair (lo, hi) of per-image bounds in the depth's units") from None
    bounds = []
    for name, values in (("lo", lo_values), ("hi", hi_values)):
        t = torch.as_tensor(values).detach().to(device="cpu", dtype=torch.float64).reshape(-1)
        if t.shape != (batch,):
            raise ValueError(f"display_range {name} needs one value per image ({batch}), got {t.numel()}")
        if not torch.isfinite(t).all():
            raise ValueError(f"display_range {name} must be finite, got {t.tolist()}")
        bounds.append(t.tolist())
    if any(lo > hi for lo, hi in zip(*bounds)):
        raise ValueError(f"display_range lo must not exceed hi, got lo={bounds[0]}, hi={bounds[1]}")
    return bounds[0], bounds[1]


def write_preview_entries(
    depth: DepthMap, temp_dir: str, max_preview_side: int = 1024, display_range: DisplayRange | None = None
) -> list[dict]:
    """Write the packed PNGs of the first images of ``depth`` (at most 16 and 8 Mpx in all, at least one)
    under ``temp_dir/dav2_preview``; returns their entries.

    Each entry: ``filename``/``subfolder``/``type`` ("temp") for ``/view``; ``width``/``height`` of the
    full-resolution map; ``preview_width``/``preview_height`` (long side <= ``max_preview_side``) for display;
    ``min``/``max`` of the finite values in the depth's units; ``units`` ('m' or 'relative'); ``kind``
    ('metric' or 'relative'); ``larger_is_nearer`` (the direction of the values, as ``DepthMap.nearness``
    orients them: the browser colours and raises near pixels without knowing kinds); ``model``; ``index`` in
    the batch and ``batch`` size.

    ``display_range`` = ``(lo[B], hi[B])`` in the depth's units (tensors or sequences, lo <= hi): the values
    that span the colormap, as ``dav2_core.colormaps.colorize_range`` gives them; each entry then carries
    ``display_min``/``display_max`` and the browser colours with that range instead of ``min``/``max``.
    """
    if not isinstance(depth, DepthMap):
        raise ValueError(f"the depth preview needs a DepthMap (the DEPTH type), got {type(depth).__name__}")
    values = depth.values
    batch, height, width = values.shape
    if batch == 0 or height == 0 or width == 0:
        raise ValueError(f"cannot preview an empty depth map (shape {tuple(values.shape)})")
    shown = _display_bounds(display_range, batch) if display_range is not None else None
    count = max(1, min(batch, MAX_PREVIEW_IMAGES, MAX_PREVIEW_PIXELS // (height * width)))
    maps = values[:count].detach().to(device="cpu", dtype=torch.float32).numpy()
    out_dir = os.path.join(temp_dir, PREVIEW_SUBFOLDER)
    os.makedirs(out_dir, exist_ok=True)
    token = uuid.uuid4().hex[:12]
    pw, ph = preview_size(width, height, max_preview_side)

    def write_one(i: int) -> dict:
        rgb, lo, hi = pack_depth_u16(maps[i])
        filename = f"dav2_depth_{token}_{i:02d}.png"
        _write_png(os.path.join(out_dir, filename), rgb)
        entry = {
            "filename": filename,
            "subfolder": PREVIEW_SUBFOLDER,
            "type": "temp",
            "width": width,
            "height": height,
            "preview_width": pw,
            "preview_height": ph,
            "min": lo,
            "max": hi,
            "units": depth.units,
            "kind": depth.kind,
            "larger_is_nearer": not depth.is_metric,
            "model": depth.model,
            "index": i,
            "batch": batch,
        }
        if shown is not None:
            entry["display_min"], entry["display_max"] = shown[0][i], shown[1][i]
        return entry

    if count == 1:
        return [write_one(0)]
    with ThreadPoolExecutor(max_workers=min(4, count)) as pool:  # numpy and the PNG encoder release the GIL
        entries = list(pool.map(write_one, range(count)))
    return entries


def depth_preview_ui(
    depth: DepthMap, max_preview_side: int = 1024, display_range: DisplayRange | None = None
) -> dict[str, list[dict]]:
    """UI output for the web preview of ``depth`` ([B,H,W]): ``{"dav2_depth": [entry, ...]}`` to merge into
    a node's ``ui`` dict; the PNGs go to ComfyUI's temp folder. ``display_range`` = ``(lo[B], hi[B])`` in the
    depth's units colours the preview with that range (see :func:`write_preview_entries`)."""
    import folder_paths  # ComfyUI's; imported here so the packing code above works without ComfyUI

    return {UI_KEY: write_preview_entries(depth, folder_paths.get_temp_directory(), max_preview_side, display_range)}


def report_ui(report: str) -> dict[str, list[str]]:
    """UI output that shows ``report`` on the node (web/dav2.js puts it in a text box): under
    :data:`REPORT_UI_KEY`, and as ``text`` like ComfyUI's core nodes for API clients."""
    return {"text": [report], REPORT_UI_KEY: [report]}
