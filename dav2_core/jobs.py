"""A run over many inputs: the options of a ``dav2`` run, its model, its report, and the image and video
paths that write every output. Under both :mod:`dav2_core.cli` (which parses the command line into
:class:`CliOptions` and prints) and :mod:`dav2_core.batch` (Ray Data workers run :func:`process_images`).

Per image ``<stem>``: ``<stem>_depth.png`` (16-bit grey, near = white), ``<stem>_depth_color.png`` (unless
``color`` is off), with ``npy`` ``<stem>_depth.npy`` (raw float32 [H,W]) and with ``exr`` ``<stem>_depth.exr``
(raw float32, kind/units/model in ``<stem>_depth.exr.json``), with ``glb`` ``<stem>_depth.glb`` (a mesh textured
with the photo, :mod:`dav2_core.geometry`; camera from ``fov``, else the photo's EXIF focal length, else 60
degrees); names from ``io.OUTPUT_SUFFIXES``. Images are
grouped by size and run batch by batch through the shared estimate pipeline; only one batch is decoded at a
time, and every output is named after its input, so the processing order does not matter.

Per video: ``<stem>_depth.mp4`` (H.264, source timing, colourised or grey, audio passed through) and, with
``frames`` / ``npy``, ``<stem>_depth_frames/<frame>.png|.npy`` (+ ``frames.json``), through
:func:`dav2_core.video.depth_video` (the Video Depth node's streaming core); one chunk of frames is decoded,
run and written before the next is read, normalised as ``video_range`` says.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from . import geometry, io
from .accel import optimize
from .colormaps import DEFAULT_COLORMAP, colorize
from .depth import DepthMap
from .effects.export import EXR_HELP, exr_backend, save_depth
from .engines import as_engine, is_video_model
from .inference import auto_chunk_size
from .loading import load_model
from .pipeline import EstimateOptions, estimate
from .variants import FAMILY_NAMES, VARIANTS
from .video import VIDEO_RANGE_HELP, FrameRange, VideoError, VideoOptions, depth_video


@dataclass(frozen=True)
class CliOptions:
    """Everything one ``dav2`` run (or ``dav2 batch`` job) was asked to do."""

    inputs: tuple[str, ...]
    output: Path
    recursive: bool = False
    variant: str | None = None
    checkpoint: str | None = None
    models_dir: str | None = None
    device: str | None = None
    dtype: str = "auto"
    compile: bool = False
    backend: str = "torch"
    cache_dir: str | None = None
    estimate: EstimateOptions = EstimateOptions()
    batch_size: int | None = None
    colormap: str = DEFAULT_COLORMAP
    color: bool = True
    npy: bool = False
    exr: bool = False
    glb: bool = False
    fov: float | None = None  # glb camera: horizontal degrees; None = the photo's EXIF, else DEFAULT_FOV
    glb_decimation: int = 1
    glb_discontinuity: float = geometry.DEFAULT_DISCONTINUITY
    frames: bool = False
    video_range: str = next(iter(VIDEO_RANGE_HELP))
    start_frame: int = 0
    frame_count: int = 0
    frame_stride: int = 1
    quiet: bool = False
    streaming: bool = False  # Video Depth Anything: the online mode instead of the offline windows


class CliError(Exception):
    """A problem that stops the run before anything is written (the CLI's exit status 2)."""


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


def output_paths(out_dir: Path, out_stem: Path, options: CliOptions) -> dict[str, Path]:
    """The files the options write for one image (``io.OUTPUT_SUFFIXES`` names), primary 16-bit PNG first."""
    wanted = {"depth": True, "color": options.color, "npy": options.npy, "exr": options.exr, "glb": options.glb}
    return {name: io.output_path(out_dir, out_stem, name) for name in wanted if wanted[name]}


def check_output_options(options: CliOptions) -> None:
    """CliError before any work when an asked-for output format cannot be written here (EXR codec)."""
    if options.exr and exr_backend() is None:
        raise CliError(f"--exr: {EXR_HELP}")
    if options.glb:
        try:
            import trimesh  # noqa: F401
        except ImportError:
            raise CliError("--glb writes meshes with trimesh, which is not installed: pip install trimesh") from None


def _write_glb(path: Path, depth: DepthMap, pixels: np.ndarray, source: Path, options: CliOptions) -> None:
    """The textured mesh of one image ([1,H,W] depth, [H,W,3] photo pixels); camera: --fov, EXIF, or 60."""
    if options.fov is not None:
        fov, how = options.fov, f"--fov {options.fov:g} degrees"
    else:
        fov, how = geometry.exif_fov(source)
        if fov is None:
            fov, how = geometry.DEFAULT_FOV, f"{how}: {geometry.DEFAULT_FOV:g} degrees"
    mesh = geometry.depth_to_mesh(
        depth,
        torch.from_numpy(pixels)[None],
        fov_deg=fov,
        decimation=options.glb_decimation,
        discontinuity=options.glb_discontinuity,
    )
    geometry.write_glb(path, mesh)
    info(options, f"{path.name}: {mesh.vertices.shape[0]} vertices, camera: {how}")


def _write_outputs(
    paths: dict[str, Path], depth: DepthMap | None, norm01: np.ndarray, colour_rgb: np.ndarray | None
) -> None:
    """The files of one image: 16-bit PNG, colour PNG, raw ``.npy`` / ``.exr`` of ``depth`` ([1,H,W]); the
    mesh is written by :func:`_write_glb`."""
    io.write_png(paths["depth"], io.to_uint16(norm01))
    if "color" in paths:
        io.write_png(paths["color"], colour_rgb)
    if "npy" in paths:
        io.write_npy(paths["npy"], depth.values[0].numpy())
    if "exr" in paths:
        save_depth(depth, paths["exr"], "exr")


def _run_batch(
    model: Any, options: CliOptions, out_dir: Path, items: list[io.InputFile], pixels: list[np.ndarray], report: Report
) -> None:
    """One forward pass for same-size images, then their outputs (normalised on the model's device)."""
    result = estimate(
        model, torch.from_numpy(np.stack(pixels)), options.estimate.with_(chunk_size=len(pixels)), output_device=None
    )
    colours = colour(result.normalized, options) if options.color else None
    raw = result.depth.with_values(result.depth.values.cpu()) if options.npy or options.exr or options.glb else None
    norm = result.normalized.cpu().numpy()
    for i, item in enumerate(items):
        paths = output_paths(out_dir, item.out_stem, options)
        _write_outputs(paths, None if raw is None else raw[i], norm[i], None if colours is None else colours[i])
        if "glb" in paths:
            try:
                _write_glb(paths["glb"], raw[i], pixels[i], item.path, options)
            except ValueError as exc:  # e.g. a decimation too large for this image, no valid depth
                report.fail(item.path, f"mesh not written: {exc}")
                continue
        report.images_done += 1


def probe_size(path: Path) -> tuple[int, int]:
    """(H, W) of an image as it will be decoded: from the header, else by decoding it (ImageReadError)."""
    size = io.probe_image_size(path)
    return size if size is not None else io.read_image(path).shape[:2]


def _probe_sizes(items: list[io.InputFile], report: Report) -> tuple[list[io.InputFile], list[tuple[int, int]]]:
    """(readable items, their (H, W)) from the headers; unreadable files are reported and dropped."""
    readable, sizes = [], []
    for item in items:
        try:
            size = probe_size(item.path)
        except io.ImageReadError as exc:
            report.fail(item.path, str(exc))
            continue
        sizes.append(size)
        readable.append(item)
    return readable, sizes


def process_images(model: Any, items: list[io.InputFile], options: CliOptions, out_dir: Path, report: Report) -> None:
    """Depth for every image: grouped by size, batch by batch; unreadable images are reported and skipped."""
    readable, sizes = _probe_sizes(items, report)
    with tqdm(total=len(items), unit="img", desc="images", disable=options.quiet, file=sys.stderr) as bar:
        bar.update(len(items) - len(readable))
        for group in io.group_by_size(sizes):
            height, width = sizes[group[0]]
            try:
                batch = batch_size(model, options, height, width)
            except ValueError as exc:
                for index in group:
                    report.fail(readable[index].path, str(exc))
                bar.update(len(group))
                continue
            for start in range(0, len(group), batch):
                batch_items, pixels = [], []
                for index in group[start : start + batch]:
                    item = readable[index]
                    try:
                        image = io.read_image(item.path)
                    except io.ImageReadError as exc:
                        report.fail(item.path, str(exc))
                        bar.update(1)
                        continue
                    if image.shape[:2] != (height, width):  # header and pixels disagree: run it alone
                        try:
                            _run_batch(model, options, out_dir, [item], [image], report)
                        except ValueError as exc:  # e.g. an aspect ratio too extreme for keep_aspect
                            report.fail(item.path, str(exc))
                        bar.update(1)
                        continue
                    batch_items.append(item)
                    pixels.append(image)
                if batch_items:
                    _run_batch(model, options, out_dir, batch_items, pixels, report)
                    bar.update(len(batch_items))


def video_options(options: CliOptions) -> VideoOptions:
    """The streaming core's options for this run (ValueError names a bad combination)."""
    sequence = tuple(fmt for fmt, wanted in (("png16", options.frames), ("npy", options.npy)) if wanted)
    return VideoOptions(
        estimate=options.estimate,
        range_mode=options.video_range,
        colormap=options.colormap if options.color else "gray",
        frames=FrameRange(options.start_frame, options.frame_count, options.frame_stride),
        sequence=sequence,
        vda_mode="streaming" if options.streaming else "offline",
    )


def process_video(model: Any, item: io.InputFile, options: CliOptions, out_dir: Path, report: Report) -> None:
    """Stream one video into its depth video; unusable inputs and lost frames go into ``report``."""
    bar = tqdm(total=None, unit="frame", desc=item.path.name, disable=options.quiet, file=sys.stderr)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    try:
        with bar:
            result = depth_video(
                model,
                item.path,
                io.output_path(out_dir, item.out_stem, "video"),
                video_options(options),
                sequence_dir=io.output_path(out_dir, item.out_stem, "frames"),
                progress=progress,
                on_warning=warn,
            )
    except (VideoError, ValueError, RuntimeError) as exc:
        report.fail(item.path, str(exc))
        return
    if result.problem:
        report.lost_frames[item.path] = result.problem
    report.videos_done += 1
    passes = f", {result.passes} passes" + (" (depth cached on disk)" if result.cache == "disk" else "")
    info(
        options,
        f"{item.path}: {result.frames} frames -> {result.output}{passes if result.passes > 1 else ''}"
        + (f", audio {result.audio}" if result.audio else ""),
    )
