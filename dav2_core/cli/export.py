"""``dav2 export``: a checkpoint or variant -> an ONNX file any ONNX runtime can run without this package.

    dav2 export --checkpoint FILE|--encoder vits --format onnx [--height H --width W [--batch N] | --dynamic]
                [--dtype fp16] [--opset N] -o out.onnx

Input ``image`` [B,3,H,W] float32 (RGB, ``(x/255 - mean)/std`` with the ImageNet mean/std stored in the
file's metadata, H and W multiples of 14); output ``depth`` [B,H,W] float32. Fixed shapes are limited to
the depth path's patch limit (MAX_TOKENS) and a traceable batch. Exit status 0 written, 2 nothing written
(bad arguments, a shape too big, model unavailable, onnx not installed), 130 interrupted (no partial file).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from collections.abc import Sequence

from ..checkpoints import CheckpointError
from ..engines.export import EXPORT_DTYPES, OPSET, ExportError, export_onnx, read_metadata
from ..hub import HubUnavailableError
from ..jobs import CliError, CliOptions, load_cli_model
from .args import add_variant_argument, positive_int


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dav2 export",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    source = parser.add_argument_group("model")
    add_variant_argument(
        source, "model variant (default vits); with --checkpoint a metric variant reads the file as metric"
    )
    source.add_argument("--checkpoint", metavar="FILE", help="checkpoint file to export (.pth, .safetensors)")
    source.add_argument("--models-dir", metavar="DIR", help="folder searched for (and receiving) variant files")
    parser.add_argument("--format", choices=["onnx"], default="onnx", help="output format (onnx)")
    shape = parser.add_argument_group("shape (fixed --height/--width, or --dynamic)")
    shape.add_argument("--height", type=positive_int, help="fixed network height (multiple of 14)")
    shape.add_argument("--width", type=positive_int, help="fixed network width (multiple of 14)")
    shape.add_argument("--batch", type=positive_int, default=None, help="fixed batch size (default: any batch)")
    shape.add_argument("--dynamic", action="store_true", help="any batch, height and width (multiples of 14)")
    parser.add_argument(
        "--dtype",
        choices=EXPORT_DTYPES,
        default="fp32",
        help="weights precision of the file (fp16: half the size; input/output stay float32)",
    )
    parser.add_argument("--opset", type=positive_int, default=OPSET, help=f"ONNX opset (default {OPSET})")
    parser.add_argument("-o", "--output", required=True, metavar="FILE", help="the .onnx file to write")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    ns = parser.parse_args(argv)
    if ns.dynamic == (ns.height is not None or ns.width is not None) or (ns.height is None) != (ns.width is None):
        parser.error("give either --height and --width (a fixed shape) or --dynamic (any shape)")
    if ns.dynamic and ns.batch is not None:
        parser.error("--batch fixes the batch of a fixed-shape export; a --dynamic file takes any batch")
    options = CliOptions(
        inputs=(),
        output=Path("."),
        variant=ns.variant,
        checkpoint=ns.checkpoint,
        models_dir=ns.models_dir,
        device="cpu",
        dtype="fp32",
    )
    try:
        model = load_cli_model(options)
        shape = {"dynamic": True} if ns.dynamic else {"height": ns.height, "width": ns.width, "batch": ns.batch}
        path = export_onnx(model, ns.output, dtype=ns.dtype, opset=ns.opset, **shape)
    except (HubUnavailableError, CheckpointError, CliError, ExportError, ValueError, ImportError, OSError) as exc:
        print(f"dav2 export: error: {exc}", file=sys.stderr)
        return 2
    meta = read_metadata(path)
    what = "any batch/height/width" if ns.dynamic else f"{ns.height}x{ns.width}, batch {ns.batch or 'any'}"
    print(
        f"dav2 export: wrote {path} ({meta['encoder']}, {meta['kind']}, {ns.dtype}, {what}, opset {ns.opset}, "
        f"checkpoint sha256 {meta['checkpoint_sha256'][:12]}...)",
        file=sys.stderr,
    )
    return 0
