"""The ``dav2`` depth command's arguments: the parser and the frozen options object built from it.

Nothing downstream sees ``argparse.Namespace``: :func:`parse_options` turns the command line into a
:class:`~dav2_core.jobs.CliOptions` (inference options as the shared :class:`~dav2_core.pipeline.EstimateOptions`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any
from collections.abc import Callable, Sequence

from .. import io
from ..colormaps import COLORMAPS, DEFAULT_COLORMAP
from ..dtypes import PRECISIONS
from ..engines.registry import BACKEND_CHOICES, REQUIREMENTS
from ..geometry import DEFAULT_DISCONTINUITY, DEFAULT_FOV
from ..pipeline import ESTIMATE_RESOLUTIONS, EstimateOptions
from ..preprocess import check_input_size
from ..tta import TTA_MODES
from ..tiling import DEFAULT_MAX_TILES, DEFAULT_TILE_OVERLAP, DEFAULT_TILE_SIZE
from ..variants import DEFAULT_INPUT_SIZE, DEFAULT_MAX_SIDE, VARIANTS
from ..jobs import CliOptions
from ..ranges import CLI_STATISTICS, CLI_STATISTICS_HELP, LEGACY_NAMES, canonical
from ..video import VDA_MODE_HELP, VIDEO_RANGE_HELP

#: --normalize choices: images use their own range; a video combines its frames' ranges (--video-range).
NORMALIZE_CHOICES: tuple[str, ...] = tuple(CLI_STATISTICS)
DTYPE_CHOICES = ("auto", *PRECISIONS)


def _whole_number(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
    return value


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    return _whole_number(text, 1)


def non_negative_int(text: str) -> int:
    """argparse type: a whole number >= 0."""
    return _whole_number(text, 0)


def range_name(front_end: str, what: str) -> Callable[[str], str]:
    """argparse type: a range name of ``dav2_core.ranges``' ``front_end`` table; an older name is accepted and
    given its current name (so ``choices`` lists only the current ones), anything else is refused naming them."""

    def convert(text: str) -> str:
        try:
            return canonical(text, front_end, what)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    convert.__name__ = what  # argparse names the type in some messages
    return convert


def normalize_argument(group: Any, help_text: str) -> None:
    """``--normalize``: the per-image range statistic (``ranges.CLI_STATISTICS``; older names accepted)."""
    group.add_argument(
        "--normalize",
        type=range_name("cli_statistic", "--normalize value"),
        choices=NORMALIZE_CHOICES,
        default=NORMALIZE_CHOICES[0],
        help=help_text,
    )


def port(text: str) -> int:
    """A TCP port number 0..65535 (0: any free port)."""
    value = non_negative_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"a port is 0..65535, got {value}")
    return value


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def positive_float(text: str) -> float:
    """argparse type: a number > 0 (NaN refused)."""
    value = _number(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def non_negative_float(text: str) -> float:
    """argparse type: a number >= 0 (NaN refused)."""
    value = _number(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def int_list(text: str) -> list[int]:
    """argparse type (benchmarks): ``"1,4,16"`` -> [1, 4, 16] (each >= 1)."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 1,4,16; got {text!r}") from None
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"values must be >= 1; got {text!r}")
    return values


def choice_list(choices: Sequence[str]) -> Callable[[str], list[str]]:
    """argparse type factory (benchmarks): comma-separated names, each one of ``choices``."""

    def parse(text: str) -> list[str]:
        values = [part.strip() for part in text.split(",") if part.strip()]
        bad = [v for v in values if v not in choices]
        if bad or not values:
            raise argparse.ArgumentTypeError(f"unknown {bad or text!r}; choose from {', '.join(choices)}")
        return values

    return parse


def model_options(ns: argparse.Namespace) -> dict[str, Any]:
    """The :class:`CliOptions` fields of :func:`add_model_arguments`' options (which model, where, how)."""
    return dict(
        variant=ns.variant,
        checkpoint=ns.checkpoint,
        models_dir=ns.models_dir,
        device=ns.device,
        dtype=ns.dtype,
        compile=ns.compile,
        backend=ns.backend,
        cache_dir=ns.cache_dir,
    )


def _fov(text: str) -> float:
    value = _number(text)
    if not 0.0 < value < 180.0:
        raise argparse.ArgumentTypeError(f"a horizontal field of view in degrees, between 0 and 180, got {text!r}")
    return value


def _input_size(text: str) -> int:
    try:
        return check_input_size(positive_int(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be from 0 to 1, got {value:g}")
    return value


def add_variant_argument(group: argparse._ArgumentGroup, help: str) -> None:
    """--encoder / --variant: which published model variant (``args.variant``; None = the default, vits)."""
    group.add_argument(
        "--encoder", "--variant", dest="variant", choices=list(VARIANTS), default=None, metavar="VARIANT", help=help
    )


def add_colormap_argument(group: argparse._ArgumentGroup, help: str) -> None:
    """--colormap: the colormap of the colour outputs (``args.colormap``, one of COLORMAPS)."""
    group.add_argument("--colormap", choices=COLORMAPS, default=DEFAULT_COLORMAP, help=help)


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The model options (--encoder, --checkpoint, --models-dir, --device, --dtype, --backend, --cache-dir, --compile)."""
    model = parser.add_argument_group("model")
    add_variant_argument(model, "model variant (default: vits); see the list below")
    model.add_argument(
        "--checkpoint",
        metavar="PATH",
        help="checkpoint file to use instead of the variant's file (.pth, .safetensors, HF "
        "folder); with --encoder a metric variant it is read as that metric model",
    )
    model.add_argument(
        "--models-dir",
        metavar="DIR",
        help="folder searched for (and receiving downloads of) variant files "
        "(default: $DAV2_MODELS_DIR or ~/.cache/dav2/models)",
    )
    model.add_argument("--device", help="cpu, cuda, cuda:1, mps (default: CUDA, then MPS, then CPU)")
    model.add_argument(
        "--dtype",
        choices=DTYPE_CHOICES,
        default="auto",
        help="precision (default auto: fp16 on CUDA/MPS, fp32 on CPU; int8: --backend openvino, "
        "onnxruntime or auto, on the CPU, approximate)",
    )
    model.add_argument(
        "--backend",
        choices=BACKEND_CHOICES,
        default="torch",
        help="inference engine (default torch); auto = the fastest installed one for the device. "
        + "; ".join(f"{name}: {need}" for name, need in REQUIREMENTS.items()),
    )
    model.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="where non-torch backends keep ONNX exports and compiled engines "
        "(default: $DAV2_ENGINE_CACHE or ~/.cache/dav2/engines)",
    )
    model.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the model (faster on many images or video frames; the first batch "
        "of each size compiles for a minute or more; falls back to plain PyTorch with a "
        "warning if compilation is unavailable)",
    )


def add_inference_arguments(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """The network size options (--input-size, --resolution, --max-side, tiles), --flip-tta and --tta; returns the
    group."""
    run = parser.add_argument_group("inference")
    run.add_argument(
        "--input-size",
        type=_input_size,
        default=DEFAULT_INPUT_SIZE,
        help=f"network short side in pixels, rounded to a multiple of 14 (default {DEFAULT_INPUT_SIZE})",
    )
    run.add_argument(
        "--resolution",
        choices=list(ESTIMATE_RESOLUTIONS),
        default=None,
        help="; ".join(f"{name}: {text}" for name, text in ESTIMATE_RESOLUTIONS.items())
        + " (default keep_aspect, or tiled with --tiles)",
    )
    run.add_argument(
        "--max-side",
        type=positive_int,
        default=DEFAULT_MAX_SIDE,
        help=f"longest network side in native mode (default {DEFAULT_MAX_SIDE})",
    )
    run.add_argument(
        "--tiles",
        type=positive_int,
        default=None,
        metavar="N",
        help=f"tiled mode with at most N tiles per image (default {DEFAULT_MAX_TILES}; implies "
        "--resolution tiled): larger images are scaled down until their tiles fit",
    )
    run.add_argument(
        "--tile-size",
        type=positive_int,
        default=DEFAULT_TILE_SIZE,
        metavar="PX",
        help=f"tiled mode: tile side, a multiple of 14 (default {DEFAULT_TILE_SIZE})",
    )
    run.add_argument(
        "--tile-overlap",
        type=int,
        default=DEFAULT_TILE_OVERLAP,
        metavar="PX",
        help=f"tiled mode: least overlap of neighbouring tiles, < tile size (default {DEFAULT_TILE_OVERLAP})",
    )
    run.add_argument(
        "--flip-tta",
        action="store_true",
        help="also predict the mirrored image and average both (cleaner; twice the compute); "
        "the same as --tta flip, and with --tta multi_scale the same as --tta multi_scale_flip",
    )
    run.add_argument(
        "--tta",
        choices=list(TTA_MODES),
        default="none",
        help="test-time augmentation (default none): "
        + "; ".join(f"{name}: {text}" for name, text in TTA_MODES.items()),
    )
    return run


def estimate_options(ns: argparse.Namespace, parser: argparse.ArgumentParser, **extra: object) -> EstimateOptions:
    """EstimateOptions from the inference arguments (plus ``extra`` fields); a bad value exits via parser.error."""
    if ns.tiles is not None and ns.resolution not in (None, "tiled"):
        parser.error(f"--tiles asks for tiled mode, but --resolution {ns.resolution} was given; drop one of them")
    resolution = ns.resolution or ("tiled" if ns.tiles is not None else "keep_aspect")
    try:
        return EstimateOptions(
            input_size=ns.input_size,
            resolution=resolution,
            max_side=ns.max_side,
            flip_tta=ns.flip_tta,
            tta=ns.tta,
            tile_size=ns.tile_size,
            tile_overlap=ns.tile_overlap,
            max_tiles=DEFAULT_MAX_TILES if ns.tiles is None else ns.tiles,
            **extra,
        )
    except ValueError as exc:
        parser.error(str(exc))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (``dav2 --help`` shows every option)."""
    variants = "\n".join(f"  {name:24s} {variant.label}" for name, variant in VARIANTS.items())
    parser = argparse.ArgumentParser(
        prog="dav2",
        description="Depth Anything V2 depth maps for images, folders and videos (Video Depth Anything: "
        "temporally consistent depth for videos, with --encoder vda_* or a video_depth_anything_*.pth checkpoint).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            f"variants (--encoder):\n{variants}\n\n"
            "outputs per image: <stem>_depth.png (16-bit, near = white), <stem>_depth_color.png, "
            "[--npy] <stem>_depth.npy (raw float32), [--exr] <stem>_depth.exr (raw float32 + .json metadata), "
            "[--glb] <stem>_depth.glb (textured mesh)\n"
            "outputs per video: <stem>_depth.mp4 (source timing and audio), [--frames/--npy] "
            "<stem>_depth_frames/NNNNNN.png|.npy + frames.json\n"
            "exit status: 0 ok; 1 some inputs failed or a video lost frames (undecodable, cut or damaged file; "
            "the rest is written); 2 nothing done; 130 interrupted"
        ),
    )
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="image files, video files or folders of them (images: "
        f"{' '.join(io.IMAGE_EXTENSIONS)}; videos: {' '.join(io.VIDEO_EXTENSIONS)})",
    )
    parser.add_argument("-o", "--output", default="out", metavar="DIR", help="output folder (default: out)")
    parser.add_argument(
        "-r",
        "--recursive",
        action="store_true",
        help="also read the subfolders of input folders (outputs mirror the folder layout)",
    )
    add_model_arguments(parser)
    run = add_inference_arguments(parser)
    run.add_argument(
        "--batch-size",
        type=positive_int,
        default=None,
        help="images or frames per forward pass (default: sized from free memory)",
    )
    run.add_argument(
        "--refine",
        type=_fraction,
        default=0.0,
        metavar="S",
        help="edge-aware refinement guided by the image, strength 0..1 (default 0 = off)",
    )
    run.add_argument(
        "--temporal",
        action="store_true",
        help="videos: align each frame's depth scale/shift to the previous frame (relative models)",
    )
    out = parser.add_argument_group("output")
    add_colormap_argument(out, f"colormap of the colour outputs (default {DEFAULT_COLORMAP}: near = red)")
    out.add_argument("--no-color", action="store_true", help="no colour PNG for images; videos are written in grey")
    out.add_argument("--invert", action="store_true", help="near = black (and the low end of the colormap)")
    out.add_argument(
        "--npy", action="store_true", help="also write raw float32 depth (.npy: relative, or metres for metric models)"
    )
    out.add_argument(
        "--exr",
        action="store_true",
        help="images: also write raw float32 depth as EXR (<stem>_depth.exr, kind/units/model in "
        "<stem>_depth.exr.json; needs the OpenEXR package or OpenCV's EXR codec)",
    )
    out.add_argument(
        "--glb",
        action="store_true",
        help="images: also write a textured triangle mesh <stem>_depth.glb (metres for metric models; relative "
        "depth: nearest point 1 unit, farthest 10; needs trimesh: pip install trimesh)",
    )
    out.add_argument(
        "--fov",
        type=_fov,
        default=None,
        metavar="DEG",
        help=f"--glb camera: horizontal field of view in degrees (default: the photo's EXIF focal length, else "
        f"{DEFAULT_FOV:g})",
    )
    out.add_argument(
        "--glb-decimation",
        type=positive_int,
        default=1,
        metavar="N",
        help="--glb: keep every N-th pixel in x and y as a vertex (default 1)",
    )
    out.add_argument(
        "--glb-discontinuity",
        type=non_negative_float,
        default=DEFAULT_DISCONTINUITY,
        metavar="F",
        help=f"--glb: cut the mesh where depth jumps by more than this fraction within 3x3 pixels (default "
        f"{DEFAULT_DISCONTINUITY:g}; 0 = off)",
    )
    out.add_argument(
        "--frames", action="store_true", help="videos: also write every frame as a 16-bit PNG in <stem>_depth_frames/"
    )
    normalize_argument(out, CLI_STATISTICS_HELP)
    video = parser.add_argument_group("video")
    old_ranges = ", ".join(f"{a} = {b}" for a, b in LEGACY_NAMES["video"].items())
    video.add_argument(
        "--video-range",
        type=range_name("video", "--video-range value"),
        choices=list(VIDEO_RANGE_HELP),
        default=next(iter(VIDEO_RANGE_HELP)),
        help="; ".join(f"{name}: {text}" for name, text in VIDEO_RANGE_HELP.items())
        + f" (older names accepted: {old_ranges})",
    )
    video.add_argument(
        "--start-frame",
        type=non_negative_int,
        default=0,
        metavar="N",
        help="first source frame to process (0-based; default 0)",
    )
    video.add_argument(
        "--frame-count",
        type=non_negative_int,
        default=0,
        metavar="N",
        help="number of frames to process (default 0 = to the end)",
    )
    video.add_argument(
        "--frame-stride",
        type=positive_int,
        default=1,
        metavar="N",
        help="process every N-th frame from the start frame (default 1)",
    )
    video.add_argument(
        "--streaming",
        action="store_true",
        help="Video Depth Anything models (vda_*): "
        + VDA_MODE_HELP["streaming"]
        + " (default: "
        + VDA_MODE_HELP["offline"]
        + ")",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars or info (warnings still shown)")
    return parser


def parse_options(argv: Sequence[str] | None = None) -> CliOptions:
    """Parse the command line (argparse exits with status 2 on a bad option) into :class:`CliOptions`."""
    parser = build_parser()
    return options_from_namespace(parser, parser.parse_args(argv))


def options_from_namespace(parser: argparse.ArgumentParser, ns: argparse.Namespace) -> CliOptions:
    """:class:`CliOptions` from parsed depth-command arguments (``parser.error`` exits on a bad combination).

    For commands that extend :func:`build_parser` with their own options (``dav2 batch``)."""
    estimate = estimate_options(
        ns,
        parser,
        chunk_size=ns.batch_size,
        refine=ns.refine,
        temporal_consistency=ns.temporal,
        normalization=ns.normalize,
        invert=ns.invert,
    )
    return CliOptions(
        inputs=tuple(ns.inputs),
        output=Path(ns.output).expanduser(),
        recursive=ns.recursive,
        **model_options(ns),
        estimate=estimate,
        batch_size=ns.batch_size,
        colormap=ns.colormap,
        color=not ns.no_color,
        npy=ns.npy,
        exr=ns.exr,
        glb=ns.glb,
        fov=ns.fov,
        glb_decimation=ns.glb_decimation,
        glb_discontinuity=ns.glb_discontinuity,
        frames=ns.frames,
        video_range=ns.video_range,
        start_frame=ns.start_frame,
        frame_count=ns.frame_count,
        frame_stride=ns.frame_stride,
        quiet=ns.quiet,
        streaming=getattr(ns, "streaming", False),
    )
