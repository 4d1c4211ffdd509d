"""The streaming video core (dav2_core.video): every frame once and in order across chunk boundaries, frame
ranges, normalisation modes, cancel, audio, and the same numbers as DepthStream.

Order and count are checked through :class:`video_clips.BrightnessEngine` (depth is the brightness, so the
index stamped into each source frame is readable in the depth video); the real random-init vits checks
that the video core is DepthStream (CPU, tiny clips, small network sizes).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from checkpoint_factory import write_checkpoint
from dav2_core.colormaps import colorize_uint8
from dav2_core.loading import load_model
from dav2_core.pipeline import DepthStream, EstimateOptions
from dav2_core.video import FrameRange, VideoError, VideoOptions, VideoSource, depth_video
from dav2_core.video.source import DecodeStats
from video_clips import BrightnessEngine, decoded, read_stamp, stamped_clip, streams, write_clip

SMALL = EstimateOptions(input_size=28, chunk_size=5)


def options(**changes) -> VideoOptions:
    return VideoOptions(estimate=changes.pop("estimate", SMALL), **changes)


def stamps(path: Path) -> list[int]:
    return [read_stamp(frame) for frame in decoded(path)[0]]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.fixture(scope="module")
def clip13(tmp_path_factory) -> Path:
    """13 stamped frames at 10 fps: not a multiple of the chunk size 5."""
    return stamped_clip(tmp_path_factory.mktemp("clips") / "clip13.mkv", 13)


@pytest.fixture(scope="module")
def vits(tmp_path_factory):
    path = write_checkpoint(
        tmp_path_factory.mktemp("ckpt") / "depth_anything_v2_vits.pth", "vits", "official-pth", seed=0
    )
    return load_model(path, device="cpu")


# ------------------------------------------------------------------------------------ frames, order, chunks
@pytest.mark.parametrize(
    "range_mode, cache", [("clip", "disk"), ("clip", "recompute"), ("running", "auto"), ("image", "auto")]
)
def test_every_frame_once_in_order_across_chunks(tmp_path, clip13, range_mode, cache):
    engine = BrightnessEngine()
    progress = []
    report = depth_video(
        engine,
        clip13,
        tmp_path / "d.mp4",
        options(range_mode=range_mode, cache=cache, sequence=("png16", "npy")),
        progress=lambda done, total: progress.append((done, total)),
    )
    assert report.frames == 13 and report.chunk == 5 and report.cache == ("" if range_mode != "clip" else cache)
    assert stamps(tmp_path / "d.mp4") == list(range(13))
    passes = 2 if range_mode == "clip" else 1
    assert engine.calls == [5, 5, 3] * (2 if cache == "recompute" else 1)  # one chunk in flight at a time
    assert [d for d, _ in progress] == [5, 10, 13, 18, 23, 26][: 3 * passes] and progress[-1] == (13 * passes,) * 2
    assert decoded(tmp_path / "d.mp4")[1] == pytest.approx([i / 10 for i in range(13)], abs=1e-3)
    folder = tmp_path / "d_frames"
    listing = json.loads((folder / "frames.json").read_text())
    assert [f["frame"] for f in listing["frames"]] == list(range(13))
    for i in (0, 6, 12):  # the files carry the frames too: png16 (normalised) and npy (raw depth)
        assert read_stamp(np.asarray(Image.open(folder / f"{i:06d}.png"))) == i
        assert read_stamp(np.load(folder / f"{i:06d}.npy")[0]) == i
    assert leftovers(tmp_path) == []  # no temporary video, cache or staging folder


def test_frame_range_start_count_stride(tmp_path, clip13):
    report = depth_video(
        BrightnessEngine(), clip13, tmp_path / "d.mp4", options(frames=FrameRange(start=2, count=4, stride=3))
    )
    assert report.frames == 4 and report.selected == 4 and report.fps == pytest.approx(10 / 3)
    assert stamps(tmp_path / "d.mp4") == [2, 5, 8, 11]
    assert decoded(tmp_path / "d.mp4")[1] == pytest.approx([0.0, 0.3, 0.6, 0.9], abs=1e-3)  # starts at 0
    import av

    with av.open(str(tmp_path / "d.mp4")) as container:  # what the video is, in its own metadata
        meta = json.loads(container.metadata["dav2_depth"])
    assert meta["frame_range"] == {"start": 2, "count": 4, "stride": 3} and meta["near"] == "white"
    assert meta["normalization"] == "clip" and meta["clip_range"] == pytest.approx(list(report.clip_range))
    assert meta["model"] == "brightness.fake" and meta["units"] == "relative"
    warnings = []
    report = depth_video(
        BrightnessEngine(),
        clip13,
        tmp_path / "e.mp4",
        options(frames=FrameRange(start=10, count=8)),
        on_warning=warnings.append,
    )
    assert stamps(tmp_path / "e.mp4") == [10, 11, 12]
    assert warnings == [
        f"{clip13}: the frame range asks for 8 frames from frame 10, the video has 3 of them; 3 frames were processed"
    ]


def test_frame_range_past_the_end_is_a_clear_error(tmp_path, clip13):
    engine = BrightnessEngine()
    with pytest.raises(
        VideoError, match=r"starts at frame 13, but the video has only 13 frames; choose a start below 13"
    ):
        depth_video(engine, clip13, tmp_path / "d.mp4", options(frames=FrameRange(start=13)))
    assert engine.calls == [] and list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="stride must be a whole number >= 1"):
        FrameRange(stride=0)


# ------------------------------------------------------------------------------------ normalisation
def test_clip_range_normalises_every_frame_with_it(tmp_path, vits):
    rng = np.random.default_rng(0)
    frames = [(rng.random((42, 56, 3)) * 255 * (0.3 + 0.1 * i)).clip(0, 255).astype(np.uint8) for i in range(7)]
    clip = write_clip(tmp_path / "c.mkv", frames)
    est = EstimateOptions(input_size=28, chunk_size=3)
    ranges = {}
    for mode in ("clip", "running", "image"):
        out = tmp_path / mode / "d.mp4"
        report = depth_video(vits, clip, out, options(estimate=est, range_mode=mode, sequence=("png16",)))
        metas = [json.loads(Image.open(out.parent / "d_frames" / f"{i:06d}.png").text["dav2_depth"]) for i in range(7)]
        ranges[mode] = [tuple(m["nearness_range"]) for m in metas]
        if mode == "clip":
            assert report.clip_range is not None
            assert all(r == pytest.approx(report.clip_range) for r in ranges[mode])
    assert ranges["running"][-1] == pytest.approx(ranges["clip"][0])  # the running range ends at the clip range
    assert len(set(ranges["running"])) > 1 and len(set(ranges["image"])) == 7
    lows, highs = zip(*ranges["running"])
    assert list(lows) == sorted(lows, reverse=True) and list(highs) == sorted(highs)  # it only widens


def test_the_video_core_is_depth_stream(tmp_path, vits):
    """The npy sequence holds exactly what DepthStream gives for the same decoded chunks (one estimate path)."""
    rng = np.random.default_rng(1)
    clip = write_clip(tmp_path / "c.mkv", [rng.integers(0, 255, (40, 60, 3), dtype=np.uint8) for _ in range(5)])
    est = EstimateOptions(input_size=28, chunk_size=2, temporal_consistency=True)
    depth_video(vits, clip, tmp_path / "d.mp4", options(estimate=est, sequence=("npy",)))
    stream = DepthStream(vits, est)
    want = torch.cat(
        [
            stream.depth(torch.from_numpy(c.frames)).values
            for c in VideoSource(clip).chunks(FrameRange(), 2, DecodeStats())
        ]
    )
    got = np.stack([np.load(tmp_path / "d_frames" / f"{i:06d}.npy")[0] for i in range(5)])
    np.testing.assert_allclose(got, want.numpy(), atol=1e-6, rtol=0)
    meta = json.loads((tmp_path / "d_frames" / "000000.npy.json").read_text())
    assert meta["kind"] == "relative" and meta["units"] == "relative"


@pytest.mark.parametrize("colormap, invert", [("turbo", False), ("gray", True)])
def test_colormap_and_invert(tmp_path, clip13, colormap, invert):
    """The video shows the colormap of the normalised depth the png16 files hold (codec error aside)."""
    out = tmp_path / "c.mp4"
    depth_video(
        BrightnessEngine(),
        clip13,
        out,
        options(estimate=SMALL.with_(invert=invert), colormap=colormap, range_mode="running", sequence=("png16",)),
    )
    frames = decoded(out)[0]
    for i in (0, 7):
        norm = np.asarray(Image.open(tmp_path / "c_frames" / f"{i:06d}.png"), dtype=np.float32) / 65535
        want = colorize_uint8(torch.from_numpy(norm)[None], colormap)[0].numpy().astype(int)
        inner = (slice(6, 18), slice(4, 12)), (slice(30, 42), slice(10, 50)), (slice(30, 42), slice(80, 120))
        for rows, cols in inner:  # inside the blocks (4:2:0 chroma blurs the edges)
            assert np.abs(frames[i][rows, cols].astype(int) - want[rows, cols]).max() <= 10
    dark, bright = frames[0][36, 30, 0], frames[0][36, 100, 0]
    assert (dark > bright) if invert else (dark < bright)  # near = white, or black when inverted
    assert stamps(out) == list(range(13))


def test_raw_normalisation_is_refused():
    with pytest.raises(ValueError, match="not 'raw'"):
        options(estimate=SMALL.with_(normalization="raw"))


# ------------------------------------------------------------------------------------ cancel, sources, audio
def test_cancel_mid_clip_leaves_nothing(tmp_path, clip13):
    calls = []

    def cancel():
        calls.append(1)
        if len(calls) == 4:  # pass 1 done (3 chunks), first chunk of pass 2 encoded
            raise InterruptedError("cancelled")

    with pytest.raises(InterruptedError):
        depth_video(
            BrightnessEngine(), clip13, tmp_path / "d.mp4", options(sequence=("png16", "npy")), check_cancel=cancel
        )
    assert list(tmp_path.iterdir()) == []  # no video, no temporary file, no sequence, no cache


def test_a_file_object_source(tmp_path, clip13):
    report = depth_video(BrightnessEngine(), io.BytesIO(clip13.read_bytes()), tmp_path / "d.mp4", options())
    assert report.frames == 13 and stamps(tmp_path / "d.mp4") == list(range(13))


def test_audio_is_copied_and_cut_to_the_range(tmp_path):
    clip = stamped_clip(
        tmp_path / "a.mp4", 20, codec="libx264", pix_fmt="yuv444p", audio="aac", options={"movflags": "faststart"}
    )
    report = depth_video(BrightnessEngine(), clip, tmp_path / "d.mp4", options())
    assert report.audio == "copied" and report.frames == 20
    codec, seconds = streams(tmp_path / "d.mp4")["audio"]
    assert codec == "aac" and seconds == pytest.approx(2.0, abs=0.1)
    report = depth_video(BrightnessEngine(), clip, tmp_path / "r.mp4", options(frames=FrameRange(start=5, count=10)))
    codec, seconds = streams(tmp_path / "r.mp4")["audio"]
    assert stamps(tmp_path / "r.mp4") == list(range(5, 15))
    assert codec == "aac" and seconds == pytest.approx(1.0, abs=0.1)  # frames 5..14 = 1 s of the source
    depth_video(BrightnessEngine(), clip, tmp_path / "n.mp4", options(audio=False))
    assert "audio" not in streams(tmp_path / "n.mp4")


def test_audio_mp4_cannot_hold_is_reencoded(tmp_path):
    clip = stamped_clip(tmp_path / "p.mkv", 10, audio="pcm_s16le")
    report = depth_video(BrightnessEngine(), clip, tmp_path / "d.mp4", options(frames=FrameRange(start=2)))
    assert report.audio == "re-encoded from pcm_s16le to aac"
    codec, seconds = streams(tmp_path / "d.mp4")["audio"]
    assert codec == "aac" and seconds == pytest.approx(0.8, abs=0.1)


def test_float_sequences_hold_the_depth_like_save_depth(tmp_path, clip13):
    """exr and npy frames carry the same float depth with Save Depth's metadata (load_depth reads them back)."""
    from dav2_core.effects.export import exr_backend, load_depth

    if exr_backend() is None:
        pytest.skip("no EXR writer in this Python (OpenEXR package or an OpenCV with EXR)")
    depth_video(BrightnessEngine(), clip13, tmp_path / "d.mp4", options(sequence=("exr", "npy"), range_mode="running"))
    folder = tmp_path / "d_frames"
    for i in (0, 12):
        exr, npy = load_depth(folder / f"{i:06d}.exr"), load_depth(folder / f"{i:06d}.npy")
        assert exr.kind == npy.kind == "relative" and exr.model == "brightness.fake"
        torch.testing.assert_close(exr.values, npy.values, atol=0, rtol=0)
        assert read_stamp(exr.values[0].numpy()) == i
    listing = json.loads((folder / "frames.json").read_text())
    assert listing["formats"] == ["exr", "npy"] and listing["fps"] == pytest.approx(10.0)
    assert [f["time_s"] for f in listing["frames"]] == pytest.approx([i / 10 for i in range(13)])


def test_a_rerun_replaces_the_sequence_folder_whole(tmp_path, clip13):
    for count in (5, 3):
        depth_video(
            BrightnessEngine(),
            clip13,
            tmp_path / "d.mp4",
            options(sequence=("npy",), frames=FrameRange(count=count)),
            sequence_dir=tmp_path / "frames",
        )
    assert sorted(p.name for p in (tmp_path / "frames").glob("*.npy")) == [f"{i:06d}.npy" for i in range(3)]
    assert len(decoded(tmp_path / "d.mp4")[0]) == 3 and leftovers(tmp_path) == []
