"""sha256 of every output the CLI and the effects write for the photos in ``../shared/images``: the behaviour
check for refactors that must change nothing, bit for bit.

    python tools/output_digest.py                      # print one "sha256  name" line per output
    python tools/output_digest.py --save before.json   # ... and store them
    python tools/output_digest.py --compare before.json  # exit 1 and list every output that changed

Runs in-process with a seeded random-init ViT-S (relative, and a metric one at 20 m; ``make_random_checkpoint``'s
weights), on the CPU in fp32, through the public entry points only (``dav2_core.cli.main`` and the
``dav2_core.effects`` functions), so the same script measures the tree before and after a refactor:
- CLI images (the first run at the default network size on several photos, the others on one): 16-bit PNG, colour PNG, ``.npy``, EXR + sidecar JSON; percentile/invert/colormap; no colour;
  flip TTA + refinement; tiled mode; a metric model (EXR in metres); ``dav2 eval`` on ``../shared/depth_gt``;
- CLI video: a lossless 12-frame pan over one photo (written here, deterministic) -> depth MP4 + 16-bit
  frames + ``.npy`` frames, for each video range mode;
- effects: lens blur, parallax, normals, calibration (points and a metric reference) on the relative and
  metric depth of one photo.
Outputs are hashed as files (every byte, metadata included); effect results as the bytes of their tensors
and the repr of their side results. The first image run takes ``--photos`` photos (default 2, smallest files
first), the others the first photo at a smaller network size: minutes on a loaded 2-core machine.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io as stdio
import json
import struct
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing the package
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

SHARED = ROOT.parent / "shared"

#: CLI runs on the photos: name -> extra arguments (every run also gets the model and --device cpu).
IMAGE_RUNS: dict[str, list[str]] = {
    "base": ["--npy", "--exr"],
    "percentile_invert": ["--normalize", "percentile", "--invert", "--colormap", "magma", "--input-size", "266"],
    "no_color": ["--no-color", "--npy", "--input-size", "266"],
    "tta_refine": ["--flip-tta", "--refine", "0.5", "--input-size", "266"],
    "tiled": ["--tiles", "4", "--tile-size", "266", "--tile-overlap", "56", "--input-size", "266", "--npy"],
}
#: The older range names (dav2_core.ranges.LEGACY_NAMES, still accepted, the same choices: clip, running, image) are
#: kept here and below so a digest saved before the range vocabulary keeps the same keys to compare against.
VIDEO_RANGES = ("two_pass", "running", "per_frame")


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def sha256_value(value: object) -> str:
    """A tensor/array by dtype, shape and bytes; anything else by its repr (dicts sorted)."""
    h = hashlib.sha256()
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().contiguous().numpy()
    if isinstance(value, np.ndarray):
        h.update(f"{value.dtype}{value.shape}".encode())
        h.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, dict):
        h.update(json.dumps(value, sort_keys=True, default=repr).encode())
    else:
        h.update(repr(value).encode())
    return h.hexdigest()


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_chunks(data: bytes) -> bytes:
    """A PNG as its chunk types and contents, without the lengths and CRCs (which change with a path inside)."""
    out, i = [PNG_SIGNATURE], len(PNG_SIGNATURE)
    while i + 8 <= len(data):
        n = struct.unpack(">I", data[i : i + 4])[0]
        out.append(data[i + 4 : i + 8 + n])
        i += 12 + n
    return b"".join(out)


def hash_tree(folder: Path, prefix: str, out: dict[str, str], work: Path | None = None) -> None:
    """Every file below ``folder``; the run's own folder ``work`` (in sidecars and PNG text: the source path) is
    read as ``<work>``, so runs in different temporary folders compare."""
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if work is not None:
            data = _png_chunks(data) if data.startswith(PNG_SIGNATURE) else data
            data = data.replace(str(work).encode(), b"<work>")
        out[f"{prefix}/{path.relative_to(folder).as_posix()}"] = hashlib.sha256(data).hexdigest()


def cli(argv: list[str]) -> tuple[int, str]:
    """``dav2 ARGV`` in-process -> (exit status, stdout)."""
    from dav2_core.cli import main

    buffer = stdio.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(stdio.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            status = main(argv)
        except SystemExit as exc:  # argparse
            status = exc.code
    return status, buffer.getvalue()


def write_pan_clip(photo: Path, path: Path, frames: int = 12, size: tuple[int, int] = (176, 128)) -> Path:
    """A lossless (FFV1) pan over a photo, ``frames`` frames of ``size`` (W, H): the video input."""
    import av

    from dav2_core.io import read_image

    image = (read_image(photo) * 255.0).round().astype(np.uint8)  # float32 RGB 0..1 -> uint8
    w, h = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=10)
        stream.width, stream.height, stream.pix_fmt = w, h, "bgr0"
        for i in range(frames):
            crop = np.ascontiguousarray(image[40 : 40 + h, 20 + 8 * i : 20 + 8 * i + w])
            for packet in stream.encode(av.VideoFrame.from_ndarray(crop, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def digest(
    work: Path, photos: list[Path], sections: tuple[str, ...] = ("cli", "eval", "video", "effects")
) -> dict[str, str]:
    from dav2_core.checkpoints.random_init import write_random_checkpoint

    out: dict[str, str] = {}
    relative = write_random_checkpoint(work / "vits.pth", "vits", "official-pth", 0, "relative", None)
    metric = write_random_checkpoint(work / "metric.safetensors", "vits", "official-safetensors", 0, "metric", 20.0)
    model = ["--checkpoint", str(relative), "--device", "cpu", "--dtype", "fp32"]
    inputs = [str(p) for p in photos]
    for name, extra in IMAGE_RUNS.items() if "cli" in sections else ():
        status, _ = cli([*(inputs if name == "base" else inputs[:1]), "-o", str(work / name), *model, "-q", *extra])
        out[f"cli/{name}/status"] = str(status)
        hash_tree(work / name, f"cli/{name}", out, work)
    metric_model = ["--checkpoint", str(metric), "--device", "cpu", "--dtype", "fp32"]
    if "cli" in sections:
        args = [inputs[0], "-o", str(work / "metric"), *metric_model, "-q", "--exr", "--npy", "--input-size", "266"]
        out["cli/metric/status"] = str(cli(args)[0])
        hash_tree(work / "metric", "cli/metric", out, work)
    if "eval" in sections:
        _eval(work, model, metric_model, out)
    if "video" in sections:
        _video(work, photos[0], model, out)
    if "effects" in sections:
        _effects(relative, metric, photos[-1], out)
    return out


def _eval(work: Path, model: list[str], metric_model: list[str], out: dict[str, str]) -> None:
    nyu = SHARED / "depth_gt" / "nyu"
    aloe = SHARED / "depth_gt" / "middlebury_aloe"
    if not nyu.is_dir() or not aloe.is_dir():
        return
    gts = [nyu / "depth" / "sync_depth_00000.png", aloe / "aloeGT.png"]
    images = [nyu / "rgb" / "rgb_00000.jpg", aloe / "aloeL.jpg"]
    for name, args in {
        "relative": [*model, "--input-size", "266"],
        "metric": [*metric_model, "--input-size", "266", "--max-depth", "10"],
    }.items():
        json_path = work / f"eval_{name}.json"
        gt_args = ["--gt", str(gts[0])] if name == "metric" else ["--gt", *map(str, gts)]
        image_args = ["--image", str(images[0])] if name == "metric" else ["--image", *map(str, images)]
        status, text = cli(["eval", *gt_args, *image_args, *args, "--json", str(json_path)])
        out[f"eval/{name}/status"] = str(status)
        out[f"eval/{name}/stdout"] = sha256_value(text.replace(str(json_path), "JSON"))
        if json_path.exists():
            out[f"eval/{name}/json"] = sha256_file(json_path)


def _video(work: Path, photo: Path, model: list[str], out: dict[str, str]) -> None:
    try:
        clip = write_pan_clip(photo, work / "pan.mkv")
    except ImportError:
        return
    import av

    with av.open(str(clip)) as container:  # the pixels: the container itself carries a random segment id
        out["video/input"] = sha256_value(np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)]))
    for mode in VIDEO_RANGES:
        folder = work / f"video_{mode}"
        args = ["--video-range", mode, "--frames", "--npy", "--input-size", "266"]
        status, _ = cli([str(clip), "-o", str(folder), *model, "-q", *args])
        out[f"video/{mode}/status"] = str(status)
        hash_tree(folder, f"video/{mode}", out, work)


def _record(out: dict[str, str], name: str, compute: Any, *args: Any, **kwargs: Any) -> Any:
    """``out[name]`` = the digest of ``compute(*args, **kwargs)``, or of the error it raises (an error is an
    output too)."""
    try:
        value = compute(*args, **kwargs)
    except ValueError as exc:
        out[name] = sha256_value(f"ValueError: {exc}")
        return None
    out[name] = sha256_value(value)
    return value


def _effects(relative: Path, metric: Path, photo: Path, out: dict[str, str]) -> None:
    from dav2_core import effects
    from dav2_core.colormaps import colorize_in_range, colorize_range
    from dav2_core.io import read_image
    from dav2_core.loading import load_model
    from dav2_core.normalize import normalize_depth
    from dav2_core.pipeline import EstimateOptions, estimate

    image = torch.from_numpy(read_image(photo))[None]
    image = torch.nn.functional.interpolate(image.permute(0, 3, 1, 2).float(), size=(168, 252), mode="area")
    image = image.permute(0, 2, 3, 1).contiguous()
    options = EstimateOptions(input_size=266)
    depths = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, path in {"relative": relative, "metric": metric}.items():
            net = load_model(str(path), device=torch.device("cpu"), dtype="fp32")
            result = estimate(net, image, options, output_device="cpu")
            depth = depths[name] = result.depth
            key = f"effects/{name}"
            out[f"{key}/depth"] = sha256_value(depth.values)
            out[f"{key}/normalized"] = sha256_value(result.normalized)
            for mode in ("per_image", "percentile", "batch", "raw"):
                _record(out, f"{key}/normalize_{mode}", normalize_depth, depth, mode)
            for mode, extra in {"auto": {}, "percentile": {}, "manual": {"vmin": 0.1, "vmax": 5.0}}.items():
                lo, hi = colorize_range(depth, mode, **extra)
                out[f"{key}/colorize_{mode}"] = sha256_value(colorize_in_range(depth, lo, hi, "inferno"))
            blur = _record(
                out,
                f"{key}/lens_blur",
                effects.lens_blur,
                image,
                depth,
                focus_point=(0.3, 0.6),
                max_blur_radius=6.0,
            )
            if blur is not None:
                out[f"{key}/lens_blur_coc"] = sha256_value(blur[1])
            _record(out, f"{key}/parallax", effects.parallax_frames, image, depth, 3, "circle", 0.04)
            _record(out, f"{key}/normals", effects.depth_to_normals, depth, 55.0)
            _record(
                out,
                f"{key}/pointcloud",
                lambda *a: [sha256_value(p) for p in effects.depth_to_pointcloud(*a)],
                depth,
                image,
                55.0,
            )
            if name == "metric":
                tiled = EstimateOptions(resolution="tiled", tile_size=126, tile_overlap=42)
                _record(
                    out, f"{key}/tiled", lambda *a: estimate(*a, output_device="cpu").depth.values, net, image, tiled
                )
        rel = depths["relative"]
        points = [(20, 30, 2.5), (200, 140, 6.0), (120, 80, 4.0)]
        for name, kwargs in {
            "points": {"points": points},
            "points_inverted": {"points": [(x, y, 10.0 - m) for x, y, m in points]},
            "reference": {"reference": depths["metric"], "max_depth_m": 15.0},
        }.items():
            fitted = _record(out, f"effects/calibrate_{name}", effects.calibrate_to_metric, rel, **kwargs)
            if fitted is not None:
                out[f"effects/calibrate_{name}_values"] = sha256_value(fitted[0].values)
                out[f"effects/calibrate_{name}_fit"] = sha256_value(fitted[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, default=SHARED / "images", help="folder of photos (default shared)")
    parser.add_argument("--photos", type=int, default=2, help="how many photos (default 2, smallest first; 0 = all)")
    parser.add_argument(
        "--sections", default="cli,eval,video,effects", help="comma-separated subset of cli,eval,video,effects"
    )
    parser.add_argument("--save", type=Path, default=None, help="write the digests as JSON")
    parser.add_argument("--compare", type=Path, default=None, help="JSON from --save: list differences, exit 1")
    args = parser.parse_args(argv)
    photos = sorted(
        (p for p in args.images.glob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"}),
        key=lambda p: (p.stat().st_size, p.name),
    )
    if not photos:
        parser.error(f"no photos in {args.images}")
    torch.manual_seed(0)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    with tempfile.TemporaryDirectory(prefix="dav2-digest-") as tmp:
        sections = tuple(part.strip() for part in args.sections.split(",") if part.strip())
        result = digest(Path(tmp), photos[: args.photos] if args.photos else photos, sections)
    for name, value in result.items():
        print(f"{value}  {name}")
    if args.save is not None:
        args.save.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    if args.compare is not None:
        before = json.loads(args.compare.read_text())
        changed = sorted(k for k in before.keys() | result.keys() if before.get(k) != result.get(k))
        for name in changed:
            print(f"CHANGED {name}: {before.get(name, '-')[:12]} -> {result.get(name, '-')[:12]}", file=sys.stderr)
        print(f"{len(result)} outputs, {len(changed)} changed", file=sys.stderr)
        return 1 if changed else 0
    print(f"{len(result)} outputs", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
