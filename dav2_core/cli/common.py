"""What the CLI's image and video paths share: messages, the run report, the model, batch sizes, colour."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from .. import io
from ..colormaps import colorize
from ..accel import optimize
from ..engines import as_engine
from ..inference import auto_chunk_size
from ..loading import load_model
from ..engines import is_video_model
from ..variants import FAMILY_NAMES, VARIANTS
from .args import CliOptions


class CliError(Exception):
    """A problem that stops the run before anything is written (exit status 2)."""


def info(options: CliOptions, message: str) -> None:
    """An informational line on stderr (silenced by --quiet), printed above any progress bar."""
    if not options.quiet:
        tqdm.write(message, file=sys.stderr)


def warn(message: str) -> None:
    """A warning line on stderr (always shown)."""
    tqdm.write(f"dav2: warning: {message}", file=sys.stderr)


@dataclass
class Report:
    """What a run did: written outputs, failed inputs (path, why), videos that lost frames (path -> why)."""

    images_done: int = 0
    videos_done: int = 0
    failed: list[tuple[Path, str]] = field(default_factory=list)
    lost_frames: dict[Path, str] = field(default_factory=dict)

    def fail(self, path: Path, why: str) -> None:
        why = why.removeprefix(f"{path}: ")
        self.failed.append((path, why))
        warn(f"skipped {path}: {why}")


def _device(name: str | None) -> torch.device | None:
    if name is None:
        return None
    try:
        device = torch.device(name)
    except RuntimeError:
        raise CliError(f"unknown device {name!r}; use cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CliError(f"device {name!r} asked for, but CUDA is not available here; use --device cpu")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise CliError("device 'mps' asked for, but Apple MPS is not available here; use --device cpu")
    return device


def load_cli_model(options: CliOptions) -> Any:
    """The model the options ask for (compiled with ``accel.optimize`` for --compile); HubUnavailableError /
    CheckpointError / ValueError pass through."""
    device = _device(options.device)
    engine = {"backend": options.backend, "cache_dir": options.cache_dir}
    if options.compile and options.backend != "torch":
        raise CliError(f"--compile is a torch option; it does not apply to --backend {options.backend}")
    if options.checkpoint is None:
        model = load_model(
            options.variant or "vits", device=device, dtype=options.dtype, models_dir=options.models_dir, **engine
        )
    else:
        variant = VARIANTS[options.variant] if options.variant else None
        metric = variant is not None and variant.kind == "metric"
        model = load_model(
            options.checkpoint,
            device=device,
            dtype=options.dtype,
            kind="metric" if metric else None,
            max_depth=variant.max_depth if metric else None,
            **engine,
        )
        if variant is not None and model.checkpoint_info.family != variant.family:
            raise CliError(
                f"{options.checkpoint} holds a {FAMILY_NAMES[model.checkpoint_info.family]} model, but --encoder "
                f"{options.variant} is {FAMILY_NAMES[variant.family]}; drop --encoder or pick a matching one"
            )
        if variant is not None and model.checkpoint_info.encoder != variant.encoder:
            raise CliError(
                f"{options.checkpoint} holds a {model.checkpoint_info.encoder} model (from its tensor shapes), "
                f"but --encoder {options.variant} needs {variant.encoder}; drop --encoder or pick a matching one"
            )
    if is_video_model(model) and options.compile:
        raise CliError("--compile does not apply to Video Depth Anything models yet; drop --compile")
    if options.streaming and not is_video_model(model):
        raise CliError(
            "--streaming is Video Depth Anything's online mode: use --encoder vda_vits (or another vda_* variant) "
            "or a video_depth_anything_*.pth checkpoint, or drop --streaming"
        )
    if options.compile:
        optimize(model)
    return model


def batch_size(model: Any, options: CliOptions, height: int, width: int) -> int:
    """--batch-size, or as many images of this size as fit half the free memory. ValueError if too big, or
    when the model cannot run this network size (an ONNX file exported for another fixed size)."""
    net = options.estimate.work_net_size(height, width)  # the largest pass (multi-scale TTA's larger view)
    as_engine(model).check_net_size(net)
    return options.batch_size or auto_chunk_size(model, net, (height, width), options.estimate.flip_tta)


def colour(norm01: torch.Tensor, options: CliOptions) -> np.ndarray:
    """[b,H,W] 0..1 (any device) -> [b,H,W,3] uint8 RGB numpy (colormap, or grey with --no-color)."""
    if not options.color:
        return io.to_uint8(norm01.cpu().numpy())[..., None].repeat(3, axis=-1)
    return io.to_uint8(colorize(norm01, options.colormap).cpu().numpy())
