"""Leftovers of killed runs (kill -9, SIGTERM): the next run cleans what is stale, never a live run's files.

Temporaries are named ``<prefix>dav2tmp-<pid>-<host tag>-...``: ``.dav2-export-*`` beside exports, ``.build-*``
in the engine cache, ``.<name>.mp4.*.tmp.mp4`` and ``.<name>_frames.partial-*`` beside video outputs. One real
kill -9 of ``dav2 export``; the other cases plant what a killed process leaves (its pid, now dead).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dav2_core import cli, io
from dav2_core.checkpoints.random_init import write_random_checkpoint
from dav2_core.engines.cache import EngineCache
from dav2_core.pipeline import EstimateOptions
from dav2_core.video import VideoOptions, depth_video
from video_clips import BrightnessEngine, stamped_clip

ROOT = Path(__file__).resolve().parents[2]
OLD = time.time() - 3600  # an hour ago: past DEAD_OWNER_GRACE, not past STALE_AFTER


def dead_pid() -> int:
    """The pid of a process of this host that has exited (and was reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def backdate(path: Path, when: float) -> None:
    for p in [path, *(path.rglob("*") if path.is_dir() else [])]:
        os.utime(p, (when, when))


def plant(folder: Path, prefix: str, pid: int, folder_kind: bool, suffix: str = "", when: float = OLD) -> Path:
    """What a process ``pid`` of this host leaves when killed: a marked temporary file or folder."""
    name = f"{prefix}{io.TEMP_MARK}-{pid}-{io.writing._host_tag()}-abc123{suffix}"
    path = folder / name
    if folder_kind:
        path.mkdir(parents=True)
        (path / "payload.bin").write_bytes(b"\0" * 1024)
    else:
        path.write_bytes(b"\0" * 1024)
    backdate(path, when)
    return path


@pytest.fixture
def live_pid():
    """A live process of this host (killed after the test)."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield process.pid
    process.kill()
    process.wait()


def test_clean_stale_temps_rules(tmp_path, live_pid):
    dead = dead_pid()
    stale_file = plant(tmp_path, ".x.png.", dead, False, ".tmp")
    stale_dir = plant(tmp_path, ".build-", dead, True)
    live = plant(tmp_path, ".build-", live_pid, True)  # a running build: never touched, however old
    mine = plant(tmp_path, ".dav2-export-", os.getpid(), True)  # this process's own
    fresh_dead = plant(tmp_path, ".y.png.", dead, False, ".tmp", when=time.time())  # within the grace period
    other_host = tmp_path / f".z.png.{io.TEMP_MARK}-{dead}-00000000-abc.tmp"  # another host: age only
    other_host.write_bytes(b"")
    backdate(other_host, OLD)
    ancient_other_host = tmp_path / f".w.png.{io.TEMP_MARK}-{dead}-00000000-abc.tmp"
    ancient_other_host.write_bytes(b"")
    backdate(ancient_other_host, time.time() - io.STALE_AFTER - 60)
    legacy_old = tmp_path / ".build-legacyold"
    legacy_old.mkdir()
    backdate(legacy_old, time.time() - io.STALE_AFTER - 60)
    legacy_fresh = tmp_path / ".build-legacyfresh"
    legacy_fresh.mkdir()
    user_file = tmp_path / f".hidden-{dead}-note"  # no mark, no legacy prefix: not ours
    user_file.write_bytes(b"")
    backdate(user_file, 0)
    removed = io.clean_stale_temps(tmp_path, legacy=(".build-",))
    assert sorted(removed) == sorted([stale_file, stale_dir, ancient_other_host, legacy_old])
    for kept in (live, mine, fresh_dead, other_host, legacy_fresh, user_file):
        assert kept.exists(), kept


def test_a_live_folder_being_written_is_not_stale_by_its_own_mtime(tmp_path):
    """A temporary folder whose contents are still being written counts as touched (its files' mtimes)."""
    build = plant(tmp_path, ".build-", dead_pid(), True)
    (build / "fresh.bin").write_bytes(b"1")  # written just now (e.g. by a process sharing the pid namespace)
    assert io.clean_stale_temps(tmp_path) == [] and build.exists()


def test_kill_9_during_export_leaves_a_temporary_the_next_export_removes(tmp_path):
    pytest.importorskip("onnx")
    checkpoint = write_random_checkpoint(tmp_path / "model.pth", "vits", "official-pth", seed=0)
    out = tmp_path / "exports" / "x.onnx"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "dav2_core", "export", "--checkpoint", str(checkpoint), "--dynamic", "-o", str(out)]
    process = subprocess.Popen(cmd, env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(out.parent.glob(".dav2-export-*")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, "the export ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    (left,) = out.parent.glob(".dav2-export-*")
    assert f"{io.TEMP_MARK}-{process.pid}-" in left.name and not out.exists()
    backdate(left, OLD)
    args = ["export", "--checkpoint", str(checkpoint), "--height", "28", "--width", "28", "-o", str(out)]
    assert cli.main(args) == 0
    assert sorted(p.name for p in out.parent.iterdir()) == ["x.onnx"]


def test_engine_cache_removes_stale_builds_and_keeps_live_ones(tmp_path, live_pid):
    stale = plant(tmp_path, ".build-", dead_pid(), True)
    legacy = tmp_path / ".build-k2j3h4"  # an older version's build folder, a day old
    legacy.mkdir()
    (legacy / "model.onnx").write_bytes(b"\0" * 4096)
    backdate(legacy, time.time() - io.STALE_AFTER - 60)
    live = plant(tmp_path, ".build-", live_pid, True)
    EngineCache(tmp_path)
    assert not stale.exists() and not legacy.exists() and live.exists()


def test_engine_cache_builds_carry_their_owner(tmp_path):
    cache = EngineCache(tmp_path)
    seen: list[str] = []
    cache.get({"backend": "x", "shape": "1"}, lambda folder: seen.append(folder.name) or (folder / "f").write_text("1"))
    assert seen and seen[0].startswith(io.temp_prefix(".build-"))


def test_video_run_removes_partial_videos_and_sequences_of_killed_runs(tmp_path, live_pid):
    clip = stamped_clip(tmp_path / "clip.mkv", 6)
    out = tmp_path / "out"
    out.mkdir()
    dead = dead_pid()
    video_temp = plant(out, ".d.mp4.", dead, False, ".tmp.mp4")
    partial = plant(out, ".d_frames.partial-", dead, True)
    live_video = plant(out, ".other.mp4.", live_pid, False, ".tmp.mp4")
    report = depth_video(
        BrightnessEngine(),
        clip,
        out / "d.mp4",
        VideoOptions(estimate=EstimateOptions(input_size=28, chunk_size=4), sequence=("npy",)),
        sequence_dir=out / "d_frames",
    )
    assert report.frames == 6
    assert not video_temp.exists() and not partial.exists() and live_video.exists()
    assert sorted(p.name for p in out.iterdir()) == sorted(["d.mp4", "d_frames", live_video.name])


def test_video_temporaries_carry_their_owner(tmp_path, monkeypatch):
    """The partial video and the staging folder are named with this process's mark while the clip runs."""
    clip = stamped_clip(tmp_path / "clip.mkv", 6)
    seen: list[str] = []

    def cancel() -> None:  # Cancel once the partial video exists (it opens with the first encoded chunk)
        names = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
        if any(name.startswith(".d.mp4.") for name in names):
            seen.extend(names)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        depth_video(
            BrightnessEngine(),
            clip,
            tmp_path / "d.mp4",
            VideoOptions(estimate=EstimateOptions(input_size=28, chunk_size=2), sequence=("npy",), range_mode="image"),
            sequence_dir=tmp_path / "d_frames",
            check_cancel=cancel,
        )
    mark = f"{io.TEMP_MARK}-{os.getpid()}-{io.writing._host_tag()}-"
    assert any(name.startswith(".d.mp4.") and mark in name for name in seen), seen
    assert any(name.startswith(".d_frames.partial-") and mark in name for name in seen), seen
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # a cancel leaves nothing


def test_atomic_writes_carry_their_owner(tmp_path):
    with io.atomic_path(tmp_path / "a.png") as temp:
        assert temp.name.startswith(io.temp_prefix(".a.png.")) and temp.parent == tmp_path
        temp.write_bytes(b"x")
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]
