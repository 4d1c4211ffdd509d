"""Live-mode benchmark: ``dav2 live`` on a 30 fps 720p file played in real time (``--realtime``), as a camera.

Builds (once, cached beside the output) a 720p clip panning over a real photo from ``../shared/images`` (a
synthetic gradient scene when the folder is absent), writes a seeded random-init checkpoint (the Hub is
unreachable here: speed does not depend on weight values), and runs the CLI's live command on it with the
options given (default: vits, input 266, ``--backend auto`` = the fastest installed CPU backend) for
``--seconds``. Reports what the live status line reports - achieved fps, end-to-end latency p50/p95 (capture ->
depth written), the model step, dropped frames - plus the latency of the first and last third of the run
(growth) and resident memory at start, end, peak and in the first and last third of the run, and checks the targets: p95 latency <= 2 model steps,
no latency growth, flat memory.

    .venv/bin/python benchmarks/bench_live.py --seconds 120 --out bench-results/live.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.photos import SHARED  # noqa: E402
from benchmarks.report import machine_info, write_json  # noqa: E402
from dav2_core.cli.args import positive_int  # noqa: E402


def make_clip(path: Path, seconds: float, fps: int = 30, size: tuple[int, int] = (1280, 720)) -> Path:
    """A ``size`` H.264 clip at ``fps``: a slow pan over a photo (or a synthetic scene)."""
    import av
    import cv2

    width, height = size
    photos = sorted((SHARED / "images").glob("*.jpg"))
    if photos:
        photo = cv2.cvtColor(cv2.imread(str(photos[0])), cv2.COLOR_BGR2RGB)
        scale = max(1.3 * width / photo.shape[1], 1.1 * height / photo.shape[0])
        photo = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    else:
        y, x = np.mgrid[0 : int(1.1 * height), 0 : int(1.3 * width)]
        photo = np.stack([(x * 255 // x.max()), (y * 255 // y.max()), ((x + y) % 255)], -1).astype(np.uint8)
    frames = int(seconds * fps)
    span_x, span_y = photo.shape[1] - width, photo.shape[0] - height
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "23"}
        for i in range(frames):
            t = 0.5 - 0.5 * np.cos(2 * np.pi * i / max(1, frames))  # there and back
            x0, y0 = int(t * span_x), int(t * span_y * 0.5)
            crop = np.ascontiguousarray(photo[y0 : y0 + height, x0 : x0 + width])
            for packet in stream.encode(av.VideoFrame.from_ndarray(crop, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="how long the live run lasts (default 120)")
    parser.add_argument("--clip", type=Path, default=None, help="a video to play instead of the built 720p clip")
    parser.add_argument("--encoder", default="vits", choices=["vits", "vitb", "vitl"])
    parser.add_argument("--input-size", type=positive_int, default=266)
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--tta", default="none")
    parser.add_argument("--out", type=Path, default=Path("bench-results/live.json"))
    ns = parser.parse_args()

    import torch

    from benchmarks.models import seeded_ours
    from dav2_core import cli
    from dav2_core.checkpoints import save_checkpoint
    from dav2_core.checkpoints.detect import CheckpointInfo

    work = ns.out.parent
    clip = ns.clip or work / f"live_720p30_{int(ns.seconds + 10)}s.mp4"
    if ns.clip is None and not clip.exists():
        print(f"building {clip} ({ns.seconds + 10:g} s of 1280x720 at 30 fps) ...", file=sys.stderr)
        make_clip(clip, ns.seconds + 10)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = Path(tmp) / f"seeded_{ns.encoder}.safetensors"
        info = CheckpointInfo(ns.encoder, "relative", None, "official-safetensors", torch.float32)
        save_checkpoint(seeded_ours(ns.encoder).state_dict(), checkpoint, info)
        stats = Path(tmp) / "stats.json"
        args = ["live", str(clip), "--realtime", "--duration", str(ns.seconds), "--checkpoint", str(checkpoint)]
        args += ["--input-size", str(ns.input_size), "--backend", ns.backend, "--dtype", ns.dtype, "--tta", ns.tta]
        args += ["--device", "cpu", "--no-serve", "--output-video", str(Path(tmp) / "live.mp4")]
        args += ["--cache-dir", str(work / "engine-cache"), "--stats-json", str(stats)]
        code = cli.main(args)
        if code != 0 or not stats.exists():
            print(f"dav2 live exited with status {code}", file=sys.stderr)
            return 1
        report = json.loads(stats.read_text())
    step = report["step_p50_ms"]
    targets = {
        "p95_latency_over_step": report["latency_p95_ms"] / step if step else None,
        "p95_latency_within_two_steps": report["latency_p95_ms"] <= 2 * step,
        "latency_growth_ms": report["latency_p95_last_ms"] - report["latency_p95_first_ms"],
        "rss_growth_first_to_last_third_mib": report["rss_last_third_mib"] - report["rss_first_third_mib"],
    }
    data = {
        "machine": machine_info(),
        "note": "random weights (speed does not depend on them); the machine was shared and loaded when measured",
        "clip": {"path": str(clip), "size": "1280x720", "fps": 30},
        "options": {k: getattr(ns, k) for k in ("encoder", "input_size", "backend", "dtype", "tta", "seconds")},
        "report": report,
        "targets": targets,
    }
    print(json.dumps({"report": report, "targets": targets}, indent=1))
    write_json(ns.out, data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
