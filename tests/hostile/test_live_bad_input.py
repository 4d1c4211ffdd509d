"""``dav2 live`` on bad input: a camera that does not exist, URLs that refuse or never answer, a stream that ends
or stalls mid-run, a port already in use, bad outputs - each a clear message, a bounded wait, and complete
files whenever a frame was written. Everything binds and connects to 127.0.0.1 only."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import av
import numpy as np
import pytest

from checkpoint_factory import write_checkpoint
from dav2_core import cli

SMALL = ["--input-size", "28", "--device", "cpu", "--no-serve", "-q"]


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    write_checkpoint(folder / "depth_anything_v2_vits.pth", "vits", "official-pth", seed=0)
    return folder


def live(args: list[str], capsys) -> tuple[int, str, float]:
    began = time.monotonic()
    code = cli.main(["live", *args])
    return code, capsys.readouterr().err, time.monotonic() - began


def write_ts(path: Path, frames: int = 10, size: tuple[int, int] = (64, 48)) -> Path:
    """An MPEG-TS clip (streamable: no index at the end), a moving bar."""
    with av.open(str(path), "w", format="mpegts") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for i in range(frames):
            image = np.zeros((size[1], size[0], 3), np.uint8)
            image[:, (4 * i) % size[0] :][:, :8] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


class SilentServer:
    """Accepts TCP connections on 127.0.0.1 and never answers (a stream URL that hangs)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                self.conns.append(self.sock.accept()[0])
            except OSError:
                return

    def close(self) -> None:
        for conn in self.conns:
            conn.close()
        self.sock.close()


class StallingServer(ThreadingHTTPServer):
    """Serves ``data`` over HTTP on 127.0.0.1: all of it, or ``stall_after`` bytes and then silence."""

    def __init__(self, data: bytes, stall_after: int | None = None) -> None:
        outer = self

        class Handler(SimpleHTTPRequestHandler):
            def log_message(self, *args):
                return

            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "video/mp2t")
                if stall_after is None:
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data if stall_after is None else data[:stall_after])
                self.wfile.flush()
                if stall_after is not None:
                    outer.release.wait(60)  # hold the connection open, sending nothing

        self.release = threading.Event()
        super().__init__(("127.0.0.1", 0), Handler)
        self.daemon_threads = True
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/clip.ts"

    def close(self) -> None:
        self.release.set()
        self.shutdown()
        self.server_close()


def test_a_camera_that_does_not_exist(capsys):
    code, err, seconds = live(["57", *SMALL], capsys)
    assert code == 2 and "camera 57 cannot be opened" in err and seconds < 30
    code, err, _ = live(["/dev/video57", *SMALL], capsys)
    assert code == 2 and "/dev/video57: no such device" in err


def test_a_url_that_does_not_answer_times_out(capsys):
    silent = SilentServer()
    try:
        code, err, seconds = live([f"http://127.0.0.1:{silent.port}/live", "--open-timeout", "1", *SMALL], capsys)
    finally:
        silent.close()
    assert code == 2 and "did not answer within 1 s" in err
    assert seconds < 15  # bounded by the timeout, never a hang


def test_a_url_that_refuses_and_unsupported_urls(capsys):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code, err, _ = live([f"rtsp://user:secret@127.0.0.1:{port}/cam", "--open-timeout", "2", *SMALL], capsys)
    assert code == 2 and "cannot be opened as a stream" in err and "secret" not in err  # no password echoed
    code, err, _ = live(["file:///etc/passwd", *SMALL], capsys)
    assert code == 2 and "unsupported stream type file://" in err
    code, err, _ = live(["no_such_clip.mp4", *SMALL], capsys)
    assert code == 2 and "no such video file" in err


def test_a_port_already_in_use(capsys, tmp_path):
    clip = write_ts(tmp_path / "clip.ts", frames=2)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        code, err, seconds = live([str(clip), "--port", str(port), "--input-size", "28", "-q"], capsys)
    assert code == 2 and f"port {port} on 127.0.0.1 is already in use" in err and seconds < 10


def test_bad_outputs_and_options(capsys, tmp_path):
    clip = write_ts(tmp_path / "clip.ts", frames=2)
    code, err, _ = live([str(clip), "--output-video", str(tmp_path / "depth.gif"), *SMALL], capsys)
    assert code == 2 and "--output-video" in err
    with pytest.raises(SystemExit) as info:
        cli.main(["live", str(clip), "--port", "70000"])
    assert info.value.code == 2 and "0..65535" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        cli.main(["live", str(clip), "--tta", "multi_scale", "--input-size", "28"])
    assert info.value.code == 2 and "input_size >= 42" in capsys.readouterr().err


def test_a_stream_that_ends_mid_run_leaves_complete_files(capsys, tmp_path, models_dir):
    server = StallingServer(write_ts(tmp_path / "clip.ts", frames=8).read_bytes())
    try:
        args = [server.url, "--output-video", str(tmp_path / "out.mp4"), "--stats-json", str(tmp_path / "s.json")]
        code, err, _ = live([*args, "--models-dir", str(models_dir), *SMALL], capsys)
    finally:
        server.close()
    stats = json.loads((tmp_path / "s.json").read_text())
    assert code == 0 and stats["stopped"] == "ended", err
    assert stats["frames"] >= 1 and "wrote video" in err
    with av.open(str(tmp_path / "out.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == stats["frames"]


def test_a_stream_that_stalls_mid_run_stops_with_complete_files(capsys, tmp_path, models_dir):
    data = write_ts(tmp_path / "clip.ts", frames=60).read_bytes()
    server = StallingServer(data, stall_after=len(data) // 2)
    try:
        args = [server.url, "--stall-timeout", "3", "--output-video", str(tmp_path / "out.mp4")]
        code, err, seconds = live(
            [*args, "--stats-json", str(tmp_path / "s.json"), "--models-dir", str(models_dir), *SMALL], capsys
        )
    finally:
        server.close()
    stats = json.loads((tmp_path / "s.json").read_text())
    assert code == 1 and stats["stopped"] in ("stalled", "error"), err
    assert "stall" in err or "broke off" in err
    assert seconds < 120
    with av.open(str(tmp_path / "out.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == stats["frames"] >= 1
