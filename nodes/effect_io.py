"""What the effect nodes share: moving tensors to ComfyUI's compute device and back, and output-folder files."""
from __future__ import annotations

import os
from pathlib import Path

import comfy.model_management as mm
import folder_paths
import torch

from dav2_core.depth import DepthMap


def on_compute_device(image: torch.Tensor | None, depth: DepthMap | None) -> tuple[torch.Tensor | None, DepthMap | None]:
    """IMAGE and DEPTH on ComfyUI's torch device (the GPU unless started with --cpu), where the effects run."""
    device = mm.get_torch_device()
    if image is not None and isinstance(image, torch.Tensor):
        image = image.to(device)
    if depth is not None and isinstance(depth, DepthMap):
        depth = depth.with_values(depth.values.to(device))
    return image, depth


def to_output_device(x: torch.Tensor) -> torch.Tensor:
    """A DEPTH's values on ComfyUI's intermediate device, in their own dtype (IMAGE/MASK results go through
    ``api.image_output``, which also takes ComfyUI's intermediate dtype)."""
    return x.to(mm.intermediate_device())


def output_target(filename_prefix: str, width: int, height: int) -> tuple[Path, str, int, str]:
    """(folder, file name, first free counter, subfolder) for ``filename_prefix`` in ComfyUI's output folder.

    Same rules as Save Image (``%width%``/``%date%``-style variables, subfolders, nothing outside the
    output folder); file names end ``_<counter:05>_`` so ComfyUI's counter keeps counting after them.
    """
    prefix = (filename_prefix or "").strip()
    if not prefix or os.path.basename(os.path.normpath(prefix)) in ("", ".", ".."):
        raise ValueError(f"filename_prefix {filename_prefix!r} has no file name; use e.g. 'depth/dav2_depth'")
    folder, name, counter, subfolder, _ = folder_paths.get_save_image_path(
        prefix, folder_paths.get_output_directory(), width, height
    )
    return Path(folder), name, counter, subfolder


def file_entries(paths: list[Path], subfolder: str) -> list[dict[str, str]]:
    """UI entries (filename, subfolder, type 'output') for files written in the output folder."""
    return [{"filename": p.name, "subfolder": subfolder, "type": "output"} for p in paths]
