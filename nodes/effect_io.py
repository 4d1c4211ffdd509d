"""What the effect nodes share: how effects run under ComfyUI (devices, memory, progress, cancel) and
output-folder files."""

from __future__ import annotations

import os
from pathlib import Path

import comfy.model_management as mm
import comfy.utils
import folder_paths
import torch

from dav2_core.effects import Execution


def execution() -> Execution:
    """How an effect runs inside ComfyUI: chunks on the torch device (the GPU unless started with --cpu),
    results assembled on the intermediate device (where IMAGE tensors between nodes live), a progress
    step per chunk, Cancel honoured after every chunk, and idle models offloaded (``free_memory``) when a
    chunk needs the room, as core nodes do."""
    bar = comfy.utils.ProgressBar(1)

    def progress(done: int, total: int) -> None:
        bar.update_absolute(done, total)
        mm.throw_exception_if_processing_interrupted()

    def reserve(nbytes: int, device: torch.device) -> None:
        mm.free_memory(nbytes, device)

    return Execution(
        device=mm.get_torch_device(), output_device=mm.intermediate_device(), progress=progress, reserve=reserve
    )


def output_target(filename_prefix: str, width: int, height: int) -> tuple[Path, str, int, str]:
    """(folder, file name, first free counter, subfolder) for ``filename_prefix`` in ComfyUI's output folder.

    Same rules as Save Image (``%width%``/``%date%``-style variables, subfolders, nothing outside the
    output folder); file names end ``_<counter:05>_`` so ComfyUI's counter keeps counting after them.
    """
    prefix = (filename_prefix or "").strip()
    if "\x00" in prefix:
        raise ValueError(
            f"filename_prefix {filename_prefix!r} contains a NUL character (\\x00), which no file name "
            "may contain (often pasted from binary text); remove it"
        )
    if not prefix or os.path.basename(os.path.normpath(prefix)) in ("", ".", ".."):
        raise ValueError(f"filename_prefix {filename_prefix!r} has no file name; use e.g. 'depth/dav2_depth'")
    folder, name, counter, subfolder, _ = folder_paths.get_save_image_path(
        prefix, folder_paths.get_output_directory(), width, height
    )
    return Path(folder), name, counter, subfolder


def file_entries(paths: list[Path], subfolder: str) -> list[dict[str, str]]:
    """UI entries (filename, subfolder, type 'output') for files written in the output folder."""
    return [{"filename": p.name, "subfolder": subfolder, "type": "output"} for p in paths]
