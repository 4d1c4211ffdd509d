"""Write a seeded random-init Depth Anything V2 checkpoint in any supported on-disk format.

    python tools/make_random_checkpoint.py vits models/depth_anything_v2_vits.pth
    python tools/make_random_checkpoint.py vits out/model.safetensors --format hf-safetensors --kind metric --max-depth 20

For trying the loaders, nodes and CLI where the Hub cannot be reached: the weights come from
``dav2_core.checkpoints.random_init`` (our own model, seeded init), so outputs are meaningless but not
degenerate. ``hf-safetensors`` also writes ``config.json`` next to the file (needs transformers);
``--kind``/``--max-depth`` are recorded only where the format has room for them (our safetensors
metadata, HF config.json).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing the package
    sys.path.insert(0, str(ROOT))

from dav2_core.checkpoints import load_checkpoint  # noqa: E402
from dav2_core.checkpoints.random_init import FORMATS, write_random_checkpoint  # noqa: E402
from dav2_core.variants import ENCODERS  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("encoder", choices=list(ENCODERS))
    parser.add_argument("out_path", type=Path)
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="on-disk layout (default: official-safetensors for a .safetensors path, else official-pth)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kind", choices=["relative", "metric"], default="relative")
    parser.add_argument(
        "--max-depth", type=float, default=None, help="metres; required with --kind metric (20 indoor, 80 outdoor)"
    )
    args = parser.parse_args(argv)
    if args.kind == "metric" and args.max_depth is None:
        parser.error("--kind metric needs --max-depth (20 for Hypersim/indoor, 80 for VKITTI/outdoor)")
    if args.kind == "relative" and args.max_depth is not None:
        parser.error("--max-depth only applies to --kind metric")
    fmt = args.format or ("official-safetensors" if args.out_path.suffix == ".safetensors" else "official-pth")
    path = write_random_checkpoint(args.out_path, args.encoder, fmt, args.seed, args.kind, args.max_depth)
    _, info = load_checkpoint(path)  # read it back: proves the file is complete and recognised
    print(
        f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB): {info.encoder}, {info.kind}"
        f"{f' {info.max_depth:g} m' if info.max_depth else ''} ({info.kind_source}), {info.format}, {info.dtype}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
