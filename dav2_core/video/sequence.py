"""Optional per-frame depth files beside the depth video, named by source frame index (``000042.png``).

Formats (any combination):
- ``png16``: the normalised depth exactly as the video shows it (same clip range, near = white unless
  inverted), 16-bit grey, with a ``dav2_depth`` PNG text chunk (kind, units, model, the nearness range and
  how to get depth back: ``nearness = lo + v * (hi - lo)`` with ``v = pixel / 65535``, ``1 - v`` if
  inverted; relative depth = nearness, metric metres = -nearness).
- ``exr`` / ``npy``: the float depth itself (relative, or metres), written by Save Depth's writer
  (:func:`dav2_core.effects.export.save_depth`: EXR float32 / ``.npy`` [1,H,W], JSON sidecar).
Each file is written atomically into a hidden staging folder next to the target folder, which is renamed
to the target name when the whole clip is done (with ``frames.json``: index, time in seconds and
file of every frame). A cancelled or failed run deletes the staging folder: no partial sequence.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..depth import DepthMap
from ..effects.export import EXR_HELP, META_KEY, exr_backend, save_depth
from ..io import atomic_path, atomic_write, clean_stale_temps, temp_prefix, to_uint16
from .source import VideoError

#: Image-sequence formats with their help text (the one list of them).
SEQUENCE_FORMATS: dict[str, str] = {
    "png16": "16-bit PNG per frame: the normalised depth as in the video (near = white), range in its metadata",
    "exr": "32-bit float EXR per frame: the depth values themselves (metres for metric models), JSON sidecar",
    "npy": "float32 .npy per frame: the depth values themselves, JSON sidecar",
}
RAW_FORMATS = ("exr", "npy")


def check_formats(formats: tuple[str, ...]) -> None:
    """ValueError for an unknown format, RuntimeError (how to enable it) when EXR cannot be written here."""
    for fmt in formats:
        if fmt not in SEQUENCE_FORMATS:
            raise ValueError(f"unknown image-sequence format {fmt!r}; choose from {', '.join(SEQUENCE_FORMATS)}")
    if "exr" in formats and exr_backend() is None:
        raise RuntimeError(EXR_HELP)


def _write_png16(path: Path, pixels: np.ndarray, meta: dict[str, Any]) -> None:
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text(META_KEY, json.dumps(meta))
    with atomic_path(path, suffix=".png") as temp:
        Image.fromarray(pixels).save(temp, format="PNG", pnginfo=info)


class SequenceWriter:
    """Writes the frames of one clip into ``folder`` (replaced as a whole when the clip is done)."""

    def __init__(self, folder: str | os.PathLike[str], formats: tuple[str, ...], meta: dict[str, Any]) -> None:
        check_formats(formats)
        self.folder = Path(folder)
        self.formats = formats
        self.meta = meta
        self.files = 0
        self._index: list[dict[str, Any]] = []
        try:
            self.folder.parent.mkdir(parents=True, exist_ok=True)
            clean_stale_temps(self.folder.parent)  # staging folders of killed runs
            self.staging = Path(
                tempfile.mkdtemp(dir=self.folder.parent, prefix=temp_prefix(f".{self.folder.name}.partial-"))
            )
        except OSError as exc:
            raise VideoError(
                f"cannot write the image sequence into {self.folder.parent} "
                f"({exc.strerror or exc}); choose a folder you can write to"
            ) from None

    def write_raw(self, indices: list[int], depth: DepthMap) -> None:
        """Float depth [n,H,W] of frames ``indices`` as exr/npy (whichever were asked for)."""
        for fmt in RAW_FORMATS:
            if fmt in self.formats:
                for i, index in enumerate(indices):
                    frame = DepthMap(depth.values[i : i + 1].detach().float().cpu(), kind=depth.kind, model=depth.model)
                    self.files += len(save_depth(frame, self.staging / f"{index:06d}", fmt))

    def write_normalized(
        self, indices: list[int], times: list[float], norm01: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor
    ) -> None:
        """Normalised depth [n,H,W] (0..1) of frames ``indices`` as png16, and their index entries."""
        pixels = to_uint16(norm01.detach().float().cpu().numpy()) if "png16" in self.formats else None
        for i, (index, seconds) in enumerate(zip(indices, times)):
            entry = {"frame": index, "time_s": round(seconds, 6)}
            if pixels is not None:
                meta = {
                    **self.meta,
                    "format": "png16-normalized",
                    **entry,
                    "nearness_range": [float(lo[i]), float(hi[i])],
                }
                _write_png16(self.staging / f"{index:06d}.png", pixels[i], meta)
                self.files += 1
            self._index.append(entry)

    def commit(self, summary: dict[str, Any]) -> Path:
        """Write ``frames.json`` and move the staging folder to ``folder`` (replacing an older one)."""
        listing = {**self.meta, **summary, "formats": list(self.formats), "frames": self._index}
        atomic_write(self.staging / "frames.json", lambda f: f.write(json.dumps(listing, indent=1).encode()))
        old = None
        if self.folder.exists():
            old = Path(tempfile.mkdtemp(dir=self.folder.parent, prefix=temp_prefix(f".{self.folder.name}.old-")))
            os.replace(self.folder, old / self.folder.name)
        os.replace(self.staging, self.folder)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.folder

    def discard(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)
