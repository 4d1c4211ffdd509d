"""Hostile videos: a clip cut in half, garbage in the middle, a truncated AVI. The frames before the damage are
kept, and the run says how many were lost: ``dav2`` exits 1 with the count (never 0), the Video Depth node
shows a warning with the count on its output, and no temporary file is left beside the outputs.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from dav2_core import cli
from dav2_core.pipeline import EstimateOptions
from dav2_core.video import VideoOptions, depth_video
from comfy_harness import comfy_inprocess  # noqa: F401  (fixture: ComfyUI in this process with the pack)
from video_clips import BrightnessEngine, stamped_frame, write_clip
from cli_fixtures import models_dir, one_cpu_thread  # noqa: F401  (fixtures: random vits weights, one thread)

FRAMES = 60
SMALL = ["--input-size", "28", "--device", "cpu", "-q", "--batch-size", "8"]


def _frames() -> list[np.ndarray]:
    rng = np.random.default_rng(0)  # noise below the stamp: frames big enough that a cut falls mid-clip
    return [
        np.concatenate([stamped_frame(i), rng.integers(0, 255, (64, 128, 3), dtype=np.uint8)]) for i in range(FRAMES)
    ]


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A complete 60-frame mp4 and three damaged copies: cut in half, garbage over half, a truncated AVI."""
    folder = tmp_path_factory.mktemp("clips")
    frames = _frames()
    full = write_clip(
        folder / "full.mp4", frames, codec="libx264", pix_fmt="yuv420p", options={"movflags": "faststart"}
    )
    data = full.read_bytes()
    (folder / "cut.mp4").write_bytes(data[: len(data) // 2])
    garbage = bytearray(data)
    n = len(garbage)
    # garbage over half the file from a third on: 25 undecodable frames in a row stop decoding (skipped: none)
    garbage[n // 3 : n // 3 + n // 2] = np.random.default_rng(0).integers(0, 255, n // 2, dtype=np.uint8).tobytes()
    (folder / "garbage.mp4").write_bytes(bytes(garbage))
    writer = cv2.VideoWriter(str(folder / "full.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (128, 112))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    avi = (folder / "full.avi").read_bytes()
    (folder / "cut.avi").write_bytes(avi[: len(avi) // 2])
    return {name: folder / name for name in ("full.mp4", "cut.mp4", "garbage.mp4", "cut.avi")}


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if ".tmp" in p.name or p.name.endswith(".partial"))


@pytest.mark.parametrize("name", ["cut.mp4", "garbage.mp4", "cut.avi"])
def test_damaged_clip_reports_the_lost_frames(tmp_path, clips, name):
    warnings: list[str] = []
    report = depth_video(
        BrightnessEngine(),
        clips[name],
        tmp_path / "d.mp4",
        VideoOptions(estimate=EstimateOptions(input_size=28, chunk_size=8)),
        on_warning=warnings.append,
    )
    assert 0 < report.frames < FRAMES
    assert report.damaged and report.lost == FRAMES - report.frames, (report.lost, report.frames)
    assert f"{report.lost} of {FRAMES} selected frames lost" in report.problem
    assert report.skipped == []  # no frame was "skipped": the lost ones were never reached (the old exit 0)
    assert _leftovers(tmp_path) == []


def test_complete_clip_reports_no_problem(tmp_path, clips):
    report = depth_video(
        BrightnessEngine(),
        clips["full.mp4"],
        tmp_path / "d.mp4",
        VideoOptions(estimate=EstimateOptions(input_size=28, chunk_size=8)),
    )
    assert report.frames == FRAMES and report.lost == 0 and not report.damaged and report.problem is None


@pytest.mark.parametrize("name", ["cut.mp4", "garbage.mp4", "cut.avi"])
def test_cli_exits_1_with_the_count_for_a_damaged_clip(tmp_path, clips, models_dir, capsys, name):
    out = tmp_path / "out"
    status = cli.main([str(clips[name]), "-o", str(out), "--models-dir", str(models_dir), *SMALL])
    err = capsys.readouterr().err
    assert status == 1, err
    assert "Traceback" not in err
    assert f"of {FRAMES} selected frames lost" in err and "1 videos lost frames" in err, err
    stem = Path(name).stem
    assert (out / f"{stem}_depth.mp4").is_file() and _leftovers(out) == []


def test_cli_exits_0_for_the_complete_clip(tmp_path, clips, models_dir, capsys):
    status = cli.main([str(clips["full.mp4"]), "-o", str(tmp_path / "out"), "--models-dir", str(models_dir), *SMALL])
    assert status == 0, capsys.readouterr().err


def test_node_shows_the_lost_frames_on_its_output(comfy_inprocess, clips):
    from comfy_api.latest import InputImpl
    from comfy_harness import TEST_CHECKPOINT

    model = comfy_inprocess.node("Load Depth Anything V2").execute(TEST_CHECKPOINT, "fp32", "auto", "auto").args[0]
    node = comfy_inprocess.node("Video Depth")
    settings = dict(input_size=28, chunk_size=8)
    output = node.execute(model, InputImpl.VideoFromFile(str(clips["cut.avi"])), "video/dav2_depth", **settings)
    text = output.ui["dav2_report"][0]
    assert "warning: cut.avi:" in text and f"of {FRAMES} selected frames lost" in text, output.ui
    assert output.ui["text"] == [text] and output.ui["images"]  # the video preview stays
    clean = node.execute(model, InputImpl.VideoFromFile(str(clips["full.mp4"])), "video/dav2_depth", **settings)
    ui = clean.ui if isinstance(clean.ui, dict) else clean.ui.as_dict()
    assert "dav2_report" not in ui and ui["images"]
