"""The two-pass depth cache: the first pass's depth in an unlinked temporary file beside the output."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any
from collections.abc import Iterator

import numpy as np
import torch

from .options import CACHE_DISK_MARGIN, VideoOptions
from .sink import writable_temp


class DiskCache:
    """Depth of the first pass, appended chunk by chunk to an unlinked temporary file, read back in order."""

    def __init__(self, folder: Path, dtype: np.dtype) -> None:
        temp = writable_temp(folder / "dav2_depth_cache", ".bin")
        self._file = open(temp, "w+b")
        temp.unlink()  # the data lives until the file is closed, whatever happens
        self.dtype = dtype

    def write(self, values: torch.Tensor) -> None:
        values.detach().to("cpu", torch.float16 if self.dtype == np.float16 else torch.float32).numpy().tofile(
            self._file
        )

    def chunks(self, counts: list[int], shape: tuple[int, int]) -> Iterator[torch.Tensor]:
        self._file.flush()
        self._file.seek(0)
        for n in counts:
            data = np.fromfile(self._file, dtype=self.dtype, count=n * shape[0] * shape[1])
            yield torch.from_numpy(data.reshape(n, *shape)).float()

    def close(self) -> None:
        self._file.close()


def cache_mode(options: VideoOptions, folder: Path, frames: int | None, height: int, width: int) -> tuple[str, Any]:
    itemsize = 4 if "png16" in options.sequence else 2  # 16-bit PNGs need more than float16's 11 bits
    if options.cache == "recompute":
        return "recompute", None
    need = (frames or 0) * height * width * itemsize + CACHE_DISK_MARGIN
    folder.mkdir(parents=True, exist_ok=True)
    room = frames is not None and shutil.disk_usage(folder).free >= need
    if options.cache == "auto" and not room:
        return "recompute", None
    return "disk", np.float16 if itemsize == 2 else np.float32
