"""Live depth (dav2_core.video.live, ``dav2 live``): latest-frame-wins capture, bounded latency, complete files
however a run stops, the local MJPEG stream. Engine-level runs use a stub engine with a fixed step time (the
shared CPUs are far too loaded for model timings to mean anything); the CLI runs the real tiny model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from checkpoint_factory import write_checkpoint
from dav2_core.engines import EngineBase
from dav2_core.pipeline import EstimateOptions
from dav2_core.video.live import (
    FileReader,
    Frame,
    FrameReader,
    LatestFrame,
    LiveOptions,
    LiveOutputs,
    live_depth,
)
from dav2_core.video.mjpeg import BOUNDARY, MjpegServer
from signals import default_sigint

ROOT = Path(__file__).resolve().parents[2]


def write_clip(path: Path, frames: int, fps: int = 30, size: tuple[int, int] = (96, 64)) -> Path:
    """An H.264 clip of a bar moving over a gradient."""
    width, height = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            image = np.zeros((height, width, 3), np.uint8)
            image[..., 0] = np.linspace(0, 255, width, dtype=np.uint8)[None]
            x = (3 * i) % width
            image[:, x : x + 12, 1] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def decoded_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


class SlowEngine(EngineBase):
    """Depth = the mean of the network input, after ``step`` seconds (a model of known speed)."""

    backend = "test"

    def __init__(self, step: float) -> None:
        self.device, self.input_dtype, self.step = torch.device("cpu"), torch.float32, step
        self.calls = 0

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        time.sleep(self.step)
        return images.mean(1) + 3.0

    def bytes_per_image(self, net_size, image_size):
        return 1 << 20


class ScriptedReader(FrameReader):
    """Yields ``count`` frames ``every`` seconds, then stalls forever, ends, or fails."""

    def __init__(self, count: int, every: float = 0.02, then: str = "end", live: bool = True) -> None:
        self.name, self.width, self.height, self.rate, self.live = "scripted", 40, 30, 30.0, live
        self.count, self.every, self.then = count, every, then
        self.error: str | None = None
        self.closed = False

    def __iter__(self):
        for i in range(self.count):
            time.sleep(self.every)
            yield np.full((30, 40, 3), (i * 7) % 255, np.uint8), None
        if self.then == "stall":  # silent (a reader stuck in a read is left to its thread, so it ends itself later)
            end = time.monotonic() + 5
            while not self.closed and time.monotonic() < end:
                time.sleep(0.05)
        elif self.then == "error":
            self.error = "the stream broke off (connection reset)"

    def close(self) -> None:
        self.closed = True


OPTIONS = dict(estimate=EstimateOptions(input_size=28))


def outputs_for(tmp_path: Path, reader: FrameReader, server: MjpegServer | None = None) -> LiveOutputs:
    return LiveOutputs(
        reader.width,
        reader.height,
        reader.rate,
        "gray",
        server=server,
        video=tmp_path / "live.mp4",
        frames_dir=tmp_path / "frames",
        meta={"source": reader.name},
    )


def assert_complete(tmp_path: Path, frames: int) -> None:
    """The video plays with every depth frame; the frames folder has each frame and its index."""
    assert frames > 0
    assert decoded_frames(tmp_path / "live.mp4") == frames
    listing = json.loads((tmp_path / "frames" / "frames.json").read_text())
    assert len(listing["frames"]) == frames == len(list((tmp_path / "frames").glob("*.npy")))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary leftovers


# ------------------------------------------------------------------------------------------ mailbox
def test_latest_frame_wins_and_counts_the_dropped():
    box = LatestFrame()
    for n in range(3):
        box.put(Frame(np.zeros((1, 1, 3), np.uint8), time.perf_counter(), n))
    assert box.get(1.0).number == 2 and box.dropped == 2 and box.received == 3
    with pytest.raises(TimeoutError):
        box.get(0.05)
    box.end()
    assert box.get(1.0) is None


def test_waiting_put_drops_nothing():
    box = LatestFrame()
    box.put(Frame(np.zeros((1, 1, 3), np.uint8), 0.0, 0), wait=True)
    second = threading.Thread(
        target=box.put, args=(Frame(np.zeros((1, 1, 3), np.uint8), 0.0, 1),), kwargs={"wait": True}
    )
    second.start()
    time.sleep(0.1)
    assert second.is_alive()  # blocked until the first frame is taken
    assert box.get(1.0).number == 0
    second.join(2)
    assert box.get(1.0).number == 1 and box.dropped == 0


# ------------------------------------------------------------------------------------------ runs
def test_realtime_file_drops_frames_and_latency_stays_within_two_steps(tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", frames=60)  # 2 s at 30 fps
    reader = FileReader(str(clip), realtime=True)
    engine = SlowEngine(step=0.1)  # 10 fps model on a 30 fps source
    report = live_depth(engine, reader, outputs_for(tmp_path, reader), LiveOptions(realtime=True, **OPTIONS))
    assert report.stopped == "ended" and report.received == 60
    assert report.dropped > 20 and report.frames + report.dropped == report.received
    # waiting at most one step in the mailbox + its own step (+ writing the outputs, slow on a loaded machine)
    assert report.latency_p95_ms <= 2 * report.step_p95_ms + 100, report
    assert 2 < report.fps < 12 and 1.5 < report.seconds < 8.0
    assert_complete(tmp_path, report.frames)


def test_a_file_without_realtime_processes_every_frame(tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", frames=12)
    reader = FileReader(str(clip), realtime=False)
    report = live_depth(SlowEngine(0.01), reader, outputs_for(tmp_path, reader), LiveOptions(**OPTIONS))
    assert (report.frames, report.dropped, report.stopped) == (12, 0, "ended")
    assert_complete(tmp_path, 12)


def test_running_range_only_widens_so_grey_levels_hold(tmp_path):
    from PIL import Image

    from dav2_core.effects.export import META_KEY

    reader = ScriptedReader(count=6, live=False)
    outputs = LiveOutputs(40, 30, 30.0, "gray", frames_dir=tmp_path / "frames", frame_formats=("npy", "png16"))
    report = live_depth(SlowEngine(0.0), reader, outputs, LiveOptions(**OPTIONS))
    assert report.frames == 6
    pngs = sorted((tmp_path / "frames").glob("*.png"))
    ranges = [json.loads(Image.open(p).text[META_KEY])["nearness_range"] for p in pngs]
    assert len(ranges) == 6 and len(list((tmp_path / "frames").glob("*.npy"))) == 6  # raw depth beside each
    los, his = [r[0] for r in ranges], [r[1] for r in ranges]
    assert los == sorted(los, reverse=True) and his == sorted(his) and (los[0], his[0]) != (los[-1], his[-1])


def test_a_stalled_stream_stops_with_complete_files(tmp_path):
    reader = ScriptedReader(count=4, then="stall")
    options = LiveOptions(stall_timeout=0.5, **OPTIONS)
    began = time.perf_counter()
    report = live_depth(SlowEngine(0.0), reader, outputs_for(tmp_path, reader), options)
    assert report.stopped == "stalled" and "no frame" in report.reason and "0.5 s" in report.reason
    assert time.perf_counter() - began < 10
    assert_complete(tmp_path, report.frames)


def test_a_stream_that_breaks_off_stops_with_its_reason(tmp_path):
    reader = ScriptedReader(count=3, then="error")
    report = live_depth(SlowEngine(0.0), reader, outputs_for(tmp_path, reader), LiveOptions(**OPTIONS))
    assert report.stopped == "error" and "connection reset" in report.reason
    assert_complete(tmp_path, report.frames)


def test_ctrl_c_finishes_the_files(tmp_path):
    reader = ScriptedReader(count=10_000, then="end")

    def interrupt(report, final):
        if not final and report.frames >= 3:
            raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("dav2_core.video.live.STATUS_EVERY", 0.0)
        report = live_depth(
            SlowEngine(0.0), reader, outputs_for(tmp_path, reader), LiveOptions(**OPTIONS), status=interrupt
        )
    assert report.stopped == "interrupted" and report.frames >= 3
    assert_complete(tmp_path, report.frames)
    assert reader.closed


def test_duration_limit_and_flat_memory(tmp_path):
    reader = ScriptedReader(count=100_000, every=0.005)
    report = live_depth(SlowEngine(0.0), reader, outputs_for(tmp_path, reader), LiveOptions(duration=2.0, **OPTIONS))
    assert report.stopped == "duration" and 1.9 < report.seconds < 4
    assert report.frames > 20
    assert report.rss_end_mib - report.rss_start_mib < 200  # outputs stream to disk; nothing accumulates
    assert 0 < report.rss_first_third_mib <= report.rss_max_mib and 0 < report.rss_last_third_mib <= report.rss_max_mib
    assert report.rss_last_third_mib - report.rss_first_third_mib < 100


# ------------------------------------------------------------------------------------------ MJPEG
def test_mjpeg_stream_page_and_frame_on_loopback():
    with MjpegServer(0) as server:
        assert server.url.startswith("http://127.0.0.1:")
        page = urllib.request.urlopen(server.url, timeout=5).read().decode()
        assert "/stream.mjpg" in page
        jpeg = b"\xff\xd8fake-jpeg\xff\xd9"
        threading.Timer(0.2, server.publish, args=(jpeg,)).start()
        with urllib.request.urlopen(server.url + "stream.mjpg", timeout=5) as response:
            assert response.headers["Content-Type"] == f"multipart/x-mixed-replace; boundary={BOUNDARY}"
            head = response.read(len(BOUNDARY) + 2 + 60)
            assert head.startswith(f"--{BOUNDARY}\r\nContent-Type: image/jpeg".encode())
        assert urllib.request.urlopen(server.url + "frame.jpg", timeout=5).read() == jpeg
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(server.url + "nothing", timeout=5)
        assert missing.value.code == 404


def test_live_run_feeds_the_browser_stream(tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", frames=20)
    with MjpegServer(0) as server:
        reader = FileReader(str(clip), realtime=False)
        live_depth(SlowEngine(0.0), reader, outputs_for(tmp_path, reader, server), LiveOptions(**OPTIONS))
        frame = urllib.request.urlopen(server.url + "frame.jpg", timeout=5).read()
    assert frame[:2] == b"\xff\xd8"  # a real JPEG of the last depth frame


# ------------------------------------------------------------------------------------------ the CLI, real model
@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    write_checkpoint(folder / "depth_anything_v2_vits.pth", "vits", "official-pth", seed=0)
    return folder


def test_cli_live_file_in_realtime_then_ctrl_c(tmp_path, models_dir):
    """``dav2 live clip --realtime`` with every output; SIGINT (Ctrl-C) after the first status line stops it
    with exit 0, a complete video, frames folder and stats."""
    clip = write_clip(tmp_path / "clip.mp4", frames=900)  # 30 s: longer than the test waits
    args = [
        sys.executable,
        "-m",
        "dav2_core",
        "live",
        str(clip),
        "--realtime",
        "--port",
        "0",
        "--output-video",
        str(tmp_path / "live.mp4"),
        "--frames-dir",
        str(tmp_path / "frames"),
        "--stats-json",
        str(tmp_path / "stats.json"),
        "--input-size",
        "28",
        "--models-dir",
        str(models_dir),
        "--device",
        "cpu",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(args, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    lines = []
    deadline = time.monotonic() + 240
    for line in proc.stderr:
        lines.append(line)
        if line.startswith("live:") and "frames" in line or time.monotonic() > deadline:
            break
    assert any("http://127.0.0.1:" in line for line in lines), lines
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=120)
    out = "".join(lines) + rest
    assert proc.returncode == 0, out
    assert "interrupted" in out and "wrote video" in out
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["stopped"] == "interrupted" and stats["frames"] >= 1 and stats["dropped"] >= 0
    assert_complete(tmp_path, stats["frames"])


def test_an_impossible_network_size_fails_before_anything_is_written(tmp_path):
    reader = ScriptedReader(count=3)  # 40x30 frames: native multi-scale has no smaller view
    options = LiveOptions(estimate=EstimateOptions(resolution="native", tta="multi_scale"))
    with pytest.raises(ValueError, match="multi-scale"):
        live_depth(SlowEngine(0.0), reader, outputs_for(tmp_path, reader), options)
    assert reader.closed and list(tmp_path.iterdir()) == []  # no video, no staging folder
