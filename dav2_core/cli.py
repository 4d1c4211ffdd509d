"""``python -m dav2_core`` / ``dav2``: depth maps for images, folders and videos.

Per image ``<stem>``: ``<stem>_depth.png`` (16-bit grey, near = white), ``<stem>_depth_color.png``
(colourised, unless ``--no-color``) and with ``--npy`` ``<stem>_depth.npy`` (raw float32 [H,W]:
relative inverse depth, or metres for metric models). Per video: ``<stem>_depth.mp4`` (mp4v, source
fps, colourised or grey) and, with ``--frames`` / ``--npy``, ``<stem>_depth_frames/<frame>.png|.npy``.

Images are grouped by size (a batch needs one size), each group runs in batches and only one batch is
decoded at a time; every output is named after its input, so the processing order does not matter.
Videos are streamed: one chunk of frames is decoded, run and written before the next is read.

Exit status: 0 all done; 1 done, but some inputs failed or some video frames could not be decoded
(each is reported on stderr and the rest is written); 2 nothing done (bad arguments, missing input,
model unavailable offline, bad checkpoint); 130 interrupted (finished files are kept, no partial file).
"""
from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm import tqdm

from . import io
from .colormaps import COLORMAPS, DEFAULT_COLORMAP, colorize
from .depth import DepthMap
from .loading import PRECISION_DTYPES
from .variants import VARIANTS

NORMALIZE_CHOICES = ("per_image", "percentile")
DTYPE_CHOICES = ("auto", *PRECISION_DTYPES)
DEFAULT_FPS = 30.0


class CliError(Exception):
    """A problem that stops the run before anything is written (exit status 2)."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _input_size(text: str) -> int:
    from .preprocess import check_input_size

    try:
        return check_input_size(_positive_int(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (``dav2 --help`` shows every option)."""
    variants = "\n".join(f"  {name:24s} {variant.label}" for name, variant in VARIANTS.items())
    parser = argparse.ArgumentParser(
        prog="dav2",
        description="Depth Anything V2 depth maps for images, folders and videos.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            f"variants (--encoder):\n{variants}\n\n"
            "outputs per image: <stem>_depth.png (16-bit, near = white), <stem>_depth_color.png, "
            "[--npy] <stem>_depth.npy (raw float32)\n"
            "outputs per video: <stem>_depth.mp4, [--frames/--npy] <stem>_depth_frames/NNNNNN.png|.npy\n"
            "exit status: 0 ok; 1 some inputs or video frames failed (the rest is written); 2 nothing done"
        ),
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="image files, video files or folders of them (images: "
                        f"{' '.join(io.IMAGE_EXTENSIONS)}; videos: {' '.join(io.VIDEO_EXTENSIONS)})")
    parser.add_argument("-o", "--output", default="out", metavar="DIR", help="output folder (default: out)")
    parser.add_argument("-r", "--recursive", action="store_true",
                        help="also read the subfolders of input folders (outputs mirror the folder layout)")
    model = parser.add_argument_group("model")
    model.add_argument("--encoder", "--variant", dest="variant", choices=list(VARIANTS), default=None,
                       metavar="VARIANT", help="model variant (default: vits); see the list below")
    model.add_argument("--checkpoint", metavar="PATH",
                       help="checkpoint file to use instead of the variant's file (.pth, .safetensors, HF "
                       "folder); with --encoder a metric variant it is read as that metric model")
    model.add_argument("--models-dir", metavar="DIR",
                       help="folder searched for (and receiving downloads of) variant files "
                       "(default: $DAV2_MODELS_DIR or ~/.cache/dav2/models)")
    model.add_argument("--device", help="cpu, cuda, cuda:1, mps (default: CUDA, then MPS, then CPU)")
    model.add_argument("--dtype", choices=DTYPE_CHOICES, default="auto",
                       help="precision (default auto: fp16 on CUDA/MPS, fp32 on CPU)")
    model.add_argument("--compile", action="store_true",
                       help="torch.compile the model (faster on many images or video frames; the first batch "
                       "of each size compiles for a minute or more; falls back to plain PyTorch with a "
                       "warning if compilation is unavailable)")
    run = parser.add_argument_group("inference")
    run.add_argument("--input-size", type=_input_size, default=518,
                     help="network short side in pixels, rounded to a multiple of 14 (default 518)")
    run.add_argument("--resolution", choices=("keep_aspect", "native"), default="keep_aspect",
                     help="keep_aspect: official (short side = input size); native: the image's own size "
                     "rounded to x14, long side capped at --max-side")
    run.add_argument("--max-side", type=_positive_int, default=1932,
                     help="longest network side in native mode (default 1932)")
    run.add_argument("--batch-size", type=_positive_int, default=None,
                     help="images or frames per forward pass (default: sized from free memory)")
    out = parser.add_argument_group("output")
    out.add_argument("--colormap", choices=COLORMAPS, default=DEFAULT_COLORMAP,
                     help=f"colormap of the colour outputs (default {DEFAULT_COLORMAP}: near = red)")
    out.add_argument("--no-color", action="store_true",
                     help="no colour PNG for images; videos are written in grey")
    out.add_argument("--npy", action="store_true",
                     help="also write raw float32 depth (.npy: relative, or metres for metric models)")
    out.add_argument("--frames", action="store_true",
                     help="videos: also write every frame as a 16-bit PNG in <stem>_depth_frames/")
    out.add_argument("--normalize", choices=NORMALIZE_CHOICES, default="per_image",
                     help="per_image: min-max; percentile: clip at the 1st/99th percentiles. Images use "
                     "their own range; a video uses the running union of its frames' ranges (no flicker)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars or info (warnings still shown)")
    return parser


# ---------------------------------------------------------------------------------------- messages
def _info(args: argparse.Namespace, message: str) -> None:
    if not args.quiet:
        tqdm.write(message, file=sys.stderr)


def _warn(message: str) -> None:
    tqdm.write(f"dav2: warning: {message}", file=sys.stderr)


# ---------------------------------------------------------------------------------------- model
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


def load_cli_model(args: argparse.Namespace) -> torch.nn.Module:
    """The model the arguments ask for; HubUnavailableError / CheckpointError / ValueError pass through."""
    from .loading import load_model

    device = _device(args.device)
    if args.checkpoint is None:
        return load_model(args.variant or "vits", device=device, dtype=args.dtype, models_dir=args.models_dir)
    variant = VARIANTS[args.variant] if args.variant else None
    metric = variant is not None and variant.kind == "metric"
    model = load_model(args.checkpoint, device=device, dtype=args.dtype,
                       kind="metric" if metric else None, max_depth=variant.max_depth if metric else None)
    if variant is not None and model.checkpoint_info.encoder != variant.encoder:
        raise CliError(
            f"{args.checkpoint} holds a {model.checkpoint_info.encoder} model (from its tensor shapes), "
            f"but --encoder {args.variant} needs {variant.encoder}; drop --encoder or pick a matching one"
        )
    return model


def _depth_map(model: torch.nn.Module, values: torch.Tensor) -> DepthMap:
    info = model.checkpoint_info
    return DepthMap(values, info.kind, model.source)


def _predict(model: torch.nn.Module, args: argparse.Namespace, images: np.ndarray) -> torch.Tensor:
    """[b,H,W,3] (float32 0..1 or uint8) -> depth [b,H,W] float32 on the model's device, in one chunk.

    Normalising and colourising then run on that device too; each chunk goes to the CPU once, to be written.
    """
    from .inference import predict_depth

    return predict_depth(model, torch.from_numpy(images), input_size=args.input_size, resolution=args.resolution,
                         max_side=args.max_side, chunk_size=len(images), output_device=None)


def _batch_size(model: torch.nn.Module, args: argparse.Namespace, height: int, width: int) -> int:
    """--batch-size, or as many images of this size as fit half the free memory. ValueError if too big."""
    from .inference import auto_chunk_size
    from .preprocess import network_size

    net = network_size(height, width, args.input_size, args.resolution, args.max_side)
    return args.batch_size or auto_chunk_size(model, net, (height, width))


# ---------------------------------------------------------------------------------------- outputs
def _colour(norm01: torch.Tensor, args: argparse.Namespace) -> np.ndarray:
    """[b,H,W] 0..1 (any device) -> [b,H,W,3] uint8 RGB numpy (colormap, or grey with --no-color)."""
    if args.no_color:
        return io.to_uint8(norm01.cpu().numpy())[..., None].repeat(3, axis=-1)
    return io.to_uint8(colorize(norm01, args.colormap).cpu().numpy())


def _write_image_outputs(out_dir: Path, item: io.InputFile, raw: np.ndarray | None, norm01: np.ndarray,
                         colour: np.ndarray | None) -> None:
    """``<stem>_depth.png`` (16-bit), ``_depth_color.png`` if ``colour``, ``_depth.npy`` if ``raw``."""
    base = out_dir / item.out_stem
    io.write_png(base.with_name(base.name + "_depth.png"), io.to_uint16(norm01))
    if colour is not None:
        io.write_png(base.with_name(base.name + "_depth_color.png"), colour)
    if raw is not None:
        io.write_npy(base.with_name(base.name + "_depth.npy"), raw)


@dataclass
class Report:
    """What a run did: written outputs, failed inputs (path, why), videos with skipped frames."""

    images_done: int = 0
    videos_done: int = 0
    failed: list[tuple[Path, str]] = field(default_factory=list)
    skipped_frames: dict[Path, int] = field(default_factory=dict)

    def fail(self, path: Path, why: str) -> None:
        why = why.removeprefix(f"{path}: ")
        self.failed.append((path, why))
        _warn(f"skipped {path}: {why}")


# ---------------------------------------------------------------------------------------- images
def process_images(model: torch.nn.Module, items: list[io.InputFile], args: argparse.Namespace,
                   out_dir: Path, report: Report) -> None:
    """Depth for every image: grouped by size, batch by batch; unreadable images are reported and skipped."""
    from .normalize import normalize_depth

    sizes: list[tuple[int, int]] = []
    readable: list[io.InputFile] = []
    for item in items:
        size = io.probe_image_size(item.path)
        if size is None:  # a header Pillow cannot parse: let OpenCV decide
            try:
                size = io.read_image(item.path).shape[:2]
            except io.ImageReadError as exc:
                report.fail(item.path, str(exc))
                continue
        sizes.append(size)
        readable.append(item)

    def run(batch_items: list[io.InputFile], pixels: list[np.ndarray]) -> None:
        depth = _predict(model, args, np.stack(pixels))
        norm = normalize_depth(_depth_map(model, depth), args.normalize)
        colour = None if args.no_color else _colour(norm, args)
        raw = depth.cpu().numpy() if args.npy else None
        norm_np = norm.cpu().numpy()
        for i, item in enumerate(batch_items):
            _write_image_outputs(out_dir, item, None if raw is None else raw[i], norm_np[i],
                                 None if colour is None else colour[i])
            report.images_done += 1

    with tqdm(total=len(items), unit="img", desc="images", disable=args.quiet, file=sys.stderr) as bar:
        bar.update(len(items) - len(readable))
        for group in io.group_by_size(sizes):
            height, width = sizes[group[0]]
            try:
                batch = _batch_size(model, args, height, width)
            except ValueError as exc:
                for index in group:
                    report.fail(readable[index].path, str(exc))
                bar.update(len(group))
                continue
            for start in range(0, len(group), batch):
                batch_items, pixels = [], []
                for index in group[start:start + batch]:
                    item = readable[index]
                    try:
                        image = io.read_image(item.path)
                    except io.ImageReadError as exc:
                        report.fail(item.path, str(exc))
                        bar.update(1)
                        continue
                    if image.shape[:2] != (height, width):  # header and pixels disagree: run it alone
                        try:
                            run([item], [image])
                        except ValueError as exc:  # e.g. an aspect ratio too extreme for keep_aspect
                            report.fail(item.path, str(exc))
                        bar.update(1)
                        continue
                    batch_items.append(item)
                    pixels.append(image)
                if batch_items:
                    run(batch_items, pixels)
                    bar.update(len(batch_items))


# ---------------------------------------------------------------------------------------- videos
class RunningRange:
    """Normalisation range for a streamed video: the union of the frames' ranges seen so far.

    Each chunk's per-frame ranges (min-max, or 1st/99th percentiles) widen the running range; it never
    shrinks, so a region keeps its grey level from frame to frame (no flicker). After the first chunks
    the range settles; only depth beyond everything seen before widens it again.
    """

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.lo = math.inf
        self.hi = -math.inf

    def update(self, depth: DepthMap) -> tuple[torch.Tensor, torch.Tensor]:
        """Widen with ``depth`` [b,H,W]; return per-frame bounds (lo[b], hi[b]) for ``scale_to_unit``."""
        from .normalize import range_of

        lo, hi = range_of(depth, self.mode)
        self.lo = min(self.lo, float(lo.min()))
        self.hi = max(self.hi, float(hi.max()))
        batch = depth.batch
        return torch.full((batch,), self.lo), torch.full((batch,), self.hi)


def process_video(model: torch.nn.Module, item: io.InputFile, args: argparse.Namespace, out_dir: Path,
                  report: Report) -> None:
    """Stream one video: read a chunk, predict, write, repeat. Corrupt frames are skipped and counted.

    A skipped frame's slot in the output video repeats the previous depth frame (the first good one
    for leading bad frames), so the depth video stays frame-aligned with the source; the frames
    folder simply has no file for it.
    """
    from .normalize import nearness, scale_to_unit

    base = out_dir / item.out_stem
    frames_dir = base.with_name(base.name + "_depth_frames")
    try:
        reader = io.VideoFrameReader(item.path)
    except io.InputError as exc:
        report.fail(item.path, str(exc))
        return
    with reader:
        if reader.height < 1 or reader.width < 1:
            report.fail(item.path, "OpenCV reports no frame size for this video")
            return
        try:
            batch = _batch_size(model, args, reader.height, reader.width)
        except ValueError as exc:
            report.fail(item.path, str(exc))
            return
        fps = reader.fps
        if not (math.isfinite(fps) and fps > 0):
            _warn(f"{item.path}: the video has no frame rate; writing at {DEFAULT_FPS:g} fps")
            fps = DEFAULT_FPS
        running = RunningRange(args.normalize)
        try:
            writer = io.AtomicVideoWriter(base.with_name(base.name + "_depth.mp4"), fps, (reader.width, reader.height))
        except ValueError as exc:
            report.fail(item.path, str(exc))
            return
        last_index, previous = -1, None

        def on_skip(index: int, why: str) -> None:
            _warn(f"{item.path}: frame {index} {why}; skipped")

        with writer, tqdm(total=reader.stats.expected or None, unit="frame", desc=item.path.name,
                          disable=args.quiet, file=sys.stderr) as bar:
            for indices, frames in reader.chunks(batch, on_skip=on_skip):
                depth = _depth_map(model, _predict(model, args, frames))
                lo, hi = running.update(depth)
                norm = scale_to_unit(nearness(depth), lo, hi)
                colour = _colour(norm, args)
                norm_np = norm.cpu().numpy() if args.frames else None
                raw = depth.values.cpu().numpy() if args.npy else None
                for i, index in enumerate(indices):
                    for _ in range(index - last_index - 1):  # slots of skipped frames keep the timing
                        writer.write(colour[i] if previous is None else previous)
                    writer.write(colour[i])
                    previous, last_index = colour[i], index
                    if args.frames:
                        io.write_png(frames_dir / f"{index:06d}.png", io.to_uint16(norm_np[i]))
                    if args.npy:
                        io.write_npy(frames_dir / f"{index:06d}.npy", raw[i])
                bar.update(reader.stats.read + len(reader.stats.skipped) - bar.n)
            stats = reader.stats
            if stats.read == 0:
                writer.discard()
                report.fail(item.path, "no frame could be decoded")
                return
    if stats.skipped:
        report.skipped_frames[item.path] = len(stats.skipped)
        listed = ", ".join(map(str, stats.skipped[:20])) + (" ..." if len(stats.skipped) > 20 else "")
        _warn(f"{item.path}: {stats.read} frames read, {len(stats.skipped)} unreadable frames skipped ({listed}); "
              "their slots in the depth video repeat the previous depth frame")
    if stats.unreadable_tail:  # container counts can be estimates (mkv, webm): a note, not a failure
        _warn(f"{item.path}: decoding ended after frame {last_index}, the file header says "
              f"{stats.expected} frames (truncated file, or an estimated count)")
    report.videos_done += 1
    _info(args, f"{item.path}: {stats.read} frames -> {writer.path}")


# ---------------------------------------------------------------------------------------- main
def run(args: argparse.Namespace) -> int:
    """Process the inputs the parsed arguments name; returns the exit status."""
    from .checkpoints import CheckpointError
    from .hub import HubUnavailableError

    out_dir = Path(args.output).expanduser()
    try:
        inputs = io.collect_inputs(args.inputs, recursive=args.recursive, exclude=out_dir)
        model = load_cli_model(args)
    except (io.InputError, HubUnavailableError, CheckpointError, CliError, ValueError) as exc:
        print(f"dav2: error: {exc}", file=sys.stderr)
        return 2
    from .inference import model_device_dtype

    device, dtype = model_device_dtype(model)  # the compute dtype (some small parameters stay float32)
    if args.compile:
        from .accel import optimize

        optimize(model)
    info = model.checkpoint_info
    _info(args, f"model {model.source} ({info.encoder}, {info.kind}) on {device} "
                f"{str(dtype).removeprefix('torch.')}")
    out_dir.mkdir(parents=True, exist_ok=True)
    report = Report()
    images = [item for item in inputs if item.kind == "image"]
    if images:
        process_images(model, images, args, out_dir, report)
    for item in inputs:
        if item.kind == "video":
            process_video(model, item, args, out_dir, report)
    skipped = sum(report.skipped_frames.values())
    _info(args, f"done: images {report.images_done}, videos {report.videos_done}, written to {out_dir}")
    if report.failed or skipped:
        _warn(f"finished with problems: {len(report.failed)} inputs failed, {skipped} video frames skipped"
              + "".join(f"\n  {path}: {why}" for path, why in report.failed)
              + "".join(f"\n  {path}: {count} frames skipped" for path, count in report.skipped_frames.items()))
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``dav2`` / ``python -m dav2_core``; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except KeyboardInterrupt:
        print("dav2: interrupted; finished outputs are kept, no partial file was left", file=sys.stderr)
        return 130
    except OSError as exc:  # e.g. output folder not writable, disk full
        print(f"dav2: error: {exc}", file=sys.stderr)
        return 2
