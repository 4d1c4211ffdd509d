"""What the effect nodes share: how effects run under ComfyUI (devices, memory, progress, cancel), and the
files nodes name: inputs inside ComfyUI's input/output/temp folders, outputs inside its output folder (both by
the one rule of ``dav2_core.paths``)."""

from __future__ import annotations

from pathlib import Path

import comfy.model_management as mm
import comfy.utils
import folder_paths
import torch

from dav2_core.effects import Execution
from dav2_core.paths import PathRefused, confine, confine_prefix


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


def comfy_folders() -> dict[str, str]:
    """ComfyUI's input, output and temp folders: the only roots a node's file inputs resolve in."""
    return {
        "input": folder_paths.get_input_directory(),
        "output": folder_paths.get_output_directory(),
        "temp": folder_paths.get_temp_directory(),
    }


def input_file(text: str, what: str) -> Path:
    """The file a node input names: relative to ComfyUI's input folder, or core's ``name [output]`` /
    ``name [temp]`` forms; anything else raises ``dav2_core.paths.PathRefused`` (one message, no hint
    whether a file outside exists)."""
    return confine(text, comfy_folders(), "input", what)


def path_problem(text: str | None, output_prefix: bool = False, what: str = "filename_prefix") -> str | None:
    """For ``validate_inputs``: the refusal message when ``text`` (an input file name, or with
    ``output_prefix`` a file name prefix) breaks the path rule, so the graph is refused when queued; None when
    it is fine or not given (a linked input: execute checks it again)."""
    if text is None or not str(text).strip():
        return None
    try:
        if output_prefix:
            confine_prefix(text, folder_paths.get_output_directory(), what)
        else:
            input_file(str(text).strip(), what)
    except PathRefused as exc:
        return str(exc)
    return None


def output_target(filename_prefix: str, width: int, height: int) -> tuple[Path, str, int, str]:
    """(folder, file name, first free counter, subfolder) for ``filename_prefix`` in ComfyUI's output folder.

    Same variables as Save Image (``%width%``, ``%date%``-style, subfolders); a prefix that would write
    outside the output folder (absolute, ``..``, a link leading out...) raises ``PathRefused`` before any
    folder is created. File names end ``_<counter:05>_`` so ComfyUI's counter keeps counting after them.
    """
    output_dir = folder_paths.get_output_directory()
    prefix = confine_prefix(filename_prefix, output_dir)
    folder, name, counter, subfolder, _ = folder_paths.get_save_image_path(prefix, output_dir, width, height)
    return Path(folder), name, counter, subfolder


def file_entries(paths: list[Path], subfolder: str) -> list[dict[str, str]]:
    """UI entries (filename, subfolder, type 'output') for files written in the output folder."""
    return [{"filename": p.name, "subfolder": subfolder, "type": "output"} for p in paths]
