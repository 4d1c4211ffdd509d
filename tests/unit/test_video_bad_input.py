"""Bad and unusual video input for the streaming core: truncated files, corrupt frames, no video stream,
variable frame rate, odd sizes, 10-bit / 4:4:4 sources, unwritable output folders."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest

from dav2_core.pipeline import EstimateOptions
from dav2_core.video import FrameRange, VideoError, VideoOptions, depth_video, encoded_size
from video_clips import BrightnessEngine, decoded, read_stamp, stamped_clip, stamped_frame, write_clip

SMALL = EstimateOptions(input_size=28, chunk_size=4)


def run(source, out: Path, **changes):
    warnings: list[str] = []
    estimate = changes.pop("estimate", SMALL)
    report = depth_video(
        BrightnessEngine(), source, out, VideoOptions(estimate=estimate, **changes), on_warning=warnings.append
    )
    return report, warnings


def test_truncated_video_keeps_the_frames_before_the_cut(tmp_path):
    rng = np.random.default_rng(0)  # noise below the stamp: frames big enough that the cut falls mid-clip
    frames = [np.concatenate([stamped_frame(i), rng.integers(0, 255, (64, 128, 3), dtype=np.uint8)]) for i in range(30)]
    clip = write_clip(
        tmp_path / "full.mp4", frames, codec="libx264", pix_fmt="yuv420p", options={"movflags": "faststart"}
    )  # the index first: a cut file still opens
    data = clip.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 6 // 10])
    report, warnings = run(cut, tmp_path / "d.mp4")
    assert 0 < report.frames < 30
    assert [read_stamp(f) for f in decoded(tmp_path / "d.mp4")[0]] == list(range(report.frames))
    assert any(
        f"ends after {report.frames} frames, but its header says 30" in w
        and f"{report.frames} frames were processed" in w
        for w in warnings
    ), warnings


def corrupt_mjpeg_frame(path: Path, frame: int) -> None:
    """Overwrite one MJPEG frame's JPEG data in an .avi with zeros."""
    data = bytearray(path.read_bytes())
    starts = [i for i in range(len(data) - 2) if data[i : i + 3] == b"\xff\xd8\xff"]
    data[starts[frame] : starts[frame + 1] - 8] = bytes(starts[frame + 1] - 8 - starts[frame])
    path.write_bytes(bytes(data))


def test_corrupt_frame_in_the_middle_is_skipped_and_counted(tmp_path):
    clip = tmp_path / "m.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (128, 48))
    for i in range(12):
        writer.write(cv2.cvtColor(stamped_frame(i), cv2.COLOR_RGB2BGR))
    writer.release()
    corrupt_mjpeg_frame(clip, 5)
    report, warnings = run(clip, tmp_path / "d.mp4", sequence=("npy",))
    assert report.skipped == [5] and report.frames == 11
    frames, times = decoded(tmp_path / "d.mp4")
    assert [read_stamp(f) for f in frames] == [0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11]
    assert times == pytest.approx([i / 10 for i in range(12) if i != 5], abs=1e-3)  # the gap is kept in time
    assert any("frame 5 cannot be decoded" in w for w in warnings)
    assert any("11 frames read, 1 unreadable frames skipped (5)" in w for w in warnings)
    assert not (tmp_path / "d_frames" / "000005.npy").exists() and (tmp_path / "d_frames" / "000006.npy").exists()


def test_no_video_stream_is_a_clear_error(tmp_path):
    import av

    sound = tmp_path / "sound.m4a"
    with av.open(str(sound), "w") as container:
        stream = container.add_stream("aac", rate=16000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 16000), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 16000, 0
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    with pytest.raises(VideoError, match=r"sound.m4a: the file has no video stream \(streams: audio\)"):
        run(sound, tmp_path / "d.mp4")
    (tmp_path / "fake.mp4").write_bytes(b"not a video at all" * 10)
    with pytest.raises(VideoError, match="fake.mp4: cannot open it as a video"):
        run(tmp_path / "fake.mp4", tmp_path / "d.mp4")
    with pytest.raises(VideoError, match="no such video file"):
        run(tmp_path / "missing.mp4", tmp_path / "d.mp4")
    assert not (tmp_path / "d.mp4").exists()


def test_variable_frame_rate_keeps_every_timestamp(tmp_path):
    pts = [0, 100, 150, 400, 420, 900, 1000, 1100, 1133]  # milliseconds
    clip = write_clip(tmp_path / "vfr.mkv", [stamped_frame(i) for i in range(9)], pts=pts, time_base=Fraction(1, 1000))
    report, _ = run(clip, tmp_path / "d.mp4")
    frames, times = decoded(tmp_path / "d.mp4")
    assert report.frames == 9 and [read_stamp(f) for f in frames] == list(range(9))
    assert times == pytest.approx([p / 1000 for p in pts], abs=1e-3)
    report, _ = run(clip, tmp_path / "s.mp4", frames=FrameRange(start=3, stride=2))
    assert decoded(tmp_path / "s.mp4")[1] == pytest.approx([0.0, 0.5, 0.7], abs=1e-3)  # 400, 900, 1100 ms - 400


@pytest.mark.parametrize("width, height", [(1, 1), (4001, 3), (127, 33)])
def test_odd_sizes_are_padded_to_even_in_the_video_only(tmp_path, width, height):
    rng = np.random.default_rng(0)
    clip = write_clip(tmp_path / "odd.mkv", rng.integers(0, 255, (3, height, width, 3), dtype=np.uint8))
    estimate = SMALL.with_(resolution="native", max_side=1932)
    report, _ = run(clip, tmp_path / "d.mp4", estimate=estimate, sequence=("npy",))
    assert report.encoded_size == encoded_size(width, height) == (width + width % 2, height + height % 2)
    frames, _ = decoded(tmp_path / "d.mp4")
    assert len(frames) == 3 and frames[0].shape == (height + height % 2, width + width % 2, 3)
    assert np.load(tmp_path / "d_frames" / "000000.npy").shape == (1, height, width)  # exact size in the files


def test_extreme_aspect_in_keep_aspect_mode_is_refused_before_anything_is_written(tmp_path):
    clip = write_clip(tmp_path / "thin.mkv", np.zeros((2, 3, 4001, 3), np.uint8))
    with pytest.raises(ValueError, match="too elongated for input_size 518 .*'native'"):
        run(clip, tmp_path / "out" / "d.mp4", estimate=EstimateOptions())  # 518: 518 x 690k would be needed
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("pix_fmt", ["yuv420p10le", "yuv444p", "yuv444p10le"])
def test_10_bit_and_444_sources(tmp_path, pix_fmt):
    clip = stamped_clip(tmp_path / f"{pix_fmt}.mp4", 6, codec="libx264", pix_fmt=pix_fmt)
    report, warnings = run(clip, tmp_path / "d.mp4")
    assert report.frames == 6 and warnings == []
    assert [read_stamp(f) for f in decoded(tmp_path / "d.mp4")[0]] == list(range(6))


def test_unwritable_output_folder_is_a_clear_error(tmp_path, monkeypatch):
    clip = stamped_clip(tmp_path / "c.mkv", 3)
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the output folder should be")
    engine = BrightnessEngine()
    with pytest.raises(VideoError, match="cannot write to the output folder .*not_a_folder"):
        depth_video(engine, clip, blocker / "d.mp4", VideoOptions(estimate=SMALL))
    with pytest.raises(VideoError, match="cannot write the image sequence into .*not_a_folder"):
        depth_video(
            engine,
            clip,
            tmp_path / "d.mp4",
            VideoOptions(estimate=SMALL, sequence=("npy",)),
            sequence_dir=blocker / "frames",
        )
    assert engine.calls == [] and not (tmp_path / "d.mp4").exists()
    import tempfile

    def denied(*args, **kwargs):  # a read-only folder (root ignores chmod, so the refusal is simulated)
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    with pytest.raises(
        VideoError, match=r"cannot write to the output folder .* \(Permission denied\); choose a folder"
    ):
        depth_video(engine, clip, tmp_path / "ro" / "d.mp4", VideoOptions(estimate=SMALL))
    assert engine.calls == []
