"""The command-line interface: images of mixed sizes, streamed video, corrupt inputs, offline, atomic writes.

CPU only, a seeded random-init vits checkpoint, tiny images and ``--input-size 70``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from cli_fixtures import models_dir, one_cpu_thread  # noqa: F401  (fixtures: random vits weights, one thread)
from dav2_core import cli, io, pipeline
from dav2_core.depth import DepthMap
from dav2_core.inference import predict_depth
from dav2_core.loading import load_model
from dav2_core.normalize import RunningRange
from dav2_core.video.sink import DepthVideoWriter
from dav2_core.video.source import DecodeStats, FrameRange, VideoSource

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["--input-size", "70", "--device", "cpu"]


@pytest.fixture(scope="module")
def model(models_dir: Path) -> torch.nn.Module:
    return load_model("vits", device="cpu", models_dir=models_dir)


def run_cli(args: list[str], models_dir: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = cli.main([*args, "--models-dir", str(models_dir), *SMALL, "-q"])
    return code, capsys.readouterr().err


def random_image(path: Path, height: int, width: int, seed: int) -> np.ndarray:
    """Write a smooth random RGB image (uint8) and return it."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (height // 8 + 2, width // 8 + 2, 3), dtype=np.uint8)
    image = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    assert cv2.imwrite(str(path), image)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def write_video(path: Path, frames: int, size_wh: tuple[int, int] = (64, 48), fourcc: str = "mp4v") -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10.0, size_wh)
    assert writer.isOpened()
    rng = np.random.default_rng(1)
    for _ in range(frames):
        base = rng.integers(0, 256, (size_wh[1] // 8, size_wh[0] // 8, 3), dtype=np.uint8)
        writer.write(cv2.resize(base, size_wh, interpolation=cv2.INTER_CUBIC))
    writer.release()


def frame_times(path: Path) -> list[float]:
    """Presentation times (s) of a video's frames."""
    import av

    with av.open(str(path)) as container:
        return [float(frame.time) for frame in container.decode(video=0)]


def count_frames(path: Path) -> tuple[int, tuple[int, int]]:
    capture = cv2.VideoCapture(str(path))
    count, shape = 0, (0, 0)
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        count, shape = count + 1, frame.shape[:2]
    capture.release()
    return count, shape


def recording_predict(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, ...]]:
    """Record the [b,H,W,3] shape of every batch the CLI sends through the pipeline (the real prediction runs)."""
    calls: list[tuple[int, ...]] = []
    real = pipeline.predict_depth

    def spy(model, images, *args, **kwargs):
        calls.append(tuple(images.shape))
        return real(model, images, *args, **kwargs)

    monkeypatch.setattr(pipeline, "predict_depth", spy)
    return calls


# ------------------------------------------------------------------------------------ basics
def test_help_runs_as_module() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dav2_core", "--help"], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert result.returncode == 0, result.stderr
    for option in ("--checkpoint", "--batch-size", "--npy", "Spectral_r", "metric_hypersim_vitl"):
        assert option in result.stdout


def test_images_of_mixed_sizes_are_grouped_and_match_their_input(
    tmp_path: Path, models_dir: Path, model: torch.nn.Module, capsys, monkeypatch
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    sizes = {"a": (48, 64), "b": (60, 80), "c": (48, 64), "d": (70, 50), "e": (48, 64)}
    images = {
        name: random_image(folder / f"{name}.png", h, w, seed=i) for i, (name, (h, w)) in enumerate(sizes.items())
    }
    calls = recording_predict(monkeypatch)
    out = tmp_path / "out"
    code, err = run_cli([str(folder), "-o", str(out), "--npy"], models_dir, capsys)
    assert code == 0, err
    # one forward per size group, same-size images batched together, groups in order of first appearance
    assert calls == [(3, 48, 64, 3), (1, 60, 80, 3), (1, 70, 50, 3)]
    raws = {}
    for name, (h, w) in sizes.items():
        grey = cv2.imread(str(out / f"{name}_depth.png"), cv2.IMREAD_UNCHANGED)
        colour = cv2.imread(str(out / f"{name}_depth_color.png"), cv2.IMREAD_UNCHANGED)
        raw = np.load(out / f"{name}_depth.npy")
        assert grey.dtype == np.uint16 and grey.shape == (h, w)
        assert colour.dtype == np.uint8 and colour.shape == (h, w, 3)
        assert raw.dtype == np.float32 and raw.shape == (h, w)
        # near (largest relative value) is white, far is black
        assert grey.flat[raw.argmax()] == 65535 and grey.flat[raw.argmin()] == 0
        raws[name] = raw
    # each output belongs to its own input: equal to that image predicted alone
    for name, image in images.items():
        alone = predict_depth(model, torch.from_numpy(image)[None], input_size=70)[0].numpy()
        span = float(alone.max() - alone.min())
        np.testing.assert_allclose(raws[name], alone, rtol=0, atol=1e-4 * span)
    assert np.abs(raws["a"] - raws["c"]).max() > 1e-3 * float(np.ptp(raws["a"]))  # distinct images, distinct maps


def test_npy_is_predict_depth_of_the_same_input(tmp_path: Path, models_dir: Path, model, capsys) -> None:
    image = random_image(tmp_path / "photo.jpg", 56, 84, seed=7)
    decoded = cv2.cvtColor(cv2.imread(str(tmp_path / "photo.jpg")), cv2.COLOR_BGR2RGB)  # jpeg is lossy
    code, err = run_cli(
        [str(tmp_path / "photo.jpg"), "-o", str(tmp_path / "o"), "--npy", "--no-color"], models_dir, capsys
    )
    assert code == 0, err
    raw = np.load(tmp_path / "o" / "photo_depth.npy")
    expected = predict_depth(model, torch.from_numpy(decoded.astype(np.float32) / 255)[None], input_size=70)[0]
    np.testing.assert_allclose(raw, expected.numpy(), rtol=0, atol=1e-5 * float(expected.max() - expected.min()))
    assert not (tmp_path / "o" / "photo_depth_color.png").exists()  # --no-color
    assert image.shape[:2] == raw.shape


def test_percentile_normalisation_clips_the_extremes(tmp_path: Path, models_dir: Path, capsys) -> None:
    random_image(tmp_path / "p.png", 64, 64, seed=3)
    code, err = run_cli(
        [str(tmp_path / "p.png"), "-o", str(tmp_path / "o"), "--normalize", "percentile"], models_dir, capsys
    )
    assert code == 0, err
    grey = cv2.imread(str(tmp_path / "o" / "p_depth.png"), cv2.IMREAD_UNCHANGED)
    # 1 % of the pixels at each end are clipped to black / white
    assert (grey == 0).mean() >= 0.009 and (grey == 65535).mean() >= 0.009


# ------------------------------------------------------------------------------------ video
def test_video_is_streamed_in_chunks_and_keeps_every_frame(
    tmp_path: Path, models_dir: Path, capsys, monkeypatch
) -> None:
    video = tmp_path / "clip.mp4"
    write_video(video, 12)
    calls = recording_predict(monkeypatch)
    out = tmp_path / "out"
    code, err = run_cli([str(video), "-o", str(out), "--batch-size", "5", "--frames"], models_dir, capsys)
    assert code == 0, err
    assert calls == [(5, 48, 64, 3), (5, 48, 64, 3), (2, 48, 64, 3)]  # never more than one chunk at a time
    frames, shape = count_frames(out / "clip_depth.mp4")
    assert frames == 12 and shape == (48, 64)
    pngs = sorted((out / "clip_depth_frames").glob("*.png"))
    assert [p.name for p in pngs] == [f"{i:06d}.png" for i in range(12)]
    assert cv2.imread(str(pngs[0]), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    assert not list(out.glob(".*"))  # no temporary files left


def test_video_runs_the_streaming_core_of_the_node(tmp_path: Path, models_dir: Path, capsys, monkeypatch) -> None:
    """`dav2 clip.mp4` is dav2_core.video.depth_video (the Video Depth node's core) with the CLI's options."""
    from dav2_core import jobs as cli_video

    video = tmp_path / "clip.mp4"
    write_video(video, 12)
    seen = []
    real = cli_video.depth_video

    def spy(model, source, output, options, **kwargs):
        seen.append(options)
        return real(model, source, output, options, **kwargs)

    monkeypatch.setattr(cli_video, "depth_video", spy)
    out = tmp_path / "out"
    code, err = run_cli(
        [
            str(video),
            "-o",
            str(out),
            "--start-frame",
            "2",
            "--frame-count",
            "4",
            "--frame-stride",
            "3",
            "--video-range",
            "running",
            "--colormap",
            "turbo",
            "--npy",
        ],
        models_dir,
        capsys,
    )
    assert code == 0, err
    (options,) = seen
    assert (options.frames.start, options.frames.count, options.frames.stride) == (2, 4, 3)
    assert options.range_mode == "running" and options.colormap == "turbo" and options.sequence == ("npy",)
    assert frame_times(out / "clip_depth.mp4") == pytest.approx([0.0, 0.3, 0.6, 0.9], abs=1e-3)
    assert sorted(p.name for p in (out / "clip_depth_frames").glob("*.npy")) == [f"{i:06d}.npy" for i in (2, 5, 8, 11)]


def test_running_range_only_widens() -> None:
    running = RunningRange("min_max")
    first = DepthMap(torch.tensor([[[1.0, 5.0]], [[2.0, 4.0]]]))
    lo, hi = running.update(first)
    assert lo.tolist() == [1.0, 1.0] and hi.tolist() == [5.0, 5.0]
    lo, hi = running.update(DepthMap(torch.tensor([[[2.0, 3.0]]])))  # narrower chunk keeps the range
    assert (lo.item(), hi.item()) == (1.0, 5.0)
    lo, hi = running.update(DepthMap(torch.tensor([[[0.5, 7.0]]])))  # wider chunk widens it
    assert (lo.item(), hi.item()) == (0.5, 7.0)


def corrupt_mjpeg_frame(path: Path, frame: int) -> None:
    """Overwrite one MJPEG frame's JPEG data in an .avi with zeros."""
    data = bytearray(path.read_bytes())
    starts = [i for i in range(len(data) - 2) if data[i : i + 3] == b"\xff\xd8\xff"]
    data[starts[frame] : starts[frame + 1] - 8] = bytes(starts[frame + 1] - 8 - starts[frame])
    path.write_bytes(bytes(data))


def test_corrupt_video_frame_is_skipped_and_reported(tmp_path: Path, models_dir: Path, capsys) -> None:
    video = tmp_path / "broken.avi"
    write_video(video, 12, fourcc="MJPG")
    corrupt_mjpeg_frame(video, 5)
    out = tmp_path / "out"
    code, err = run_cli([str(video), "-o", str(out), "--batch-size", "4", "--frames"], models_dir, capsys)
    assert code == 1  # finished, with a problem to report
    assert "frame 5 cannot be decoded" in err and "11 frames read, 1 unreadable frames skipped (5)" in err
    # No frame is invented for the skipped one (it used to repeat the previous depth frame): 11 frames out,
    # each at its source time, so the depth video stays aligned with the source (frame 6 at 0.6 s).
    assert frame_times(out / "broken_depth.mp4") == pytest.approx([i / 10 for i in range(12) if i != 5], abs=1e-3)
    names = {p.name for p in (out / "broken_depth_frames").glob("*.png")}
    assert len(names) == 11 and "000005.png" not in names and "000006.png" in names


def test_video_source_reports_skips(tmp_path: Path) -> None:
    video = tmp_path / "v.avi"
    write_video(video, 9, fourcc="MJPG")
    corrupt_mjpeg_frame(video, 0)
    skipped: list[int] = []
    stats = DecodeStats()
    chunks = list(VideoSource(video).chunks(FrameRange(), 4, stats, on_skip=lambda i, why: skipped.append(i)))
    assert [i for chunk in chunks for i in chunk.indices] == list(range(1, 9))
    assert [len(chunk.indices) for chunk in chunks] == [4, 4]
    assert skipped == [0] and stats.skipped == [0] and stats.decoded == 8


# ------------------------------------------------------------------------------------ bad inputs
def test_offline_without_the_file_names_file_and_repo(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    image = tmp_path / "x.png"
    random_image(image, 32, 32, seed=0)
    empty = tmp_path / "empty_models"
    empty.mkdir()
    code = cli.main([str(image), "-o", str(tmp_path / "out"), "--models-dir", str(empty), "--encoder", "vits", "-q"])
    err = capsys.readouterr().err
    assert code == 2
    assert "depth_anything_v2_vits.pth" in err and "huggingface.co/depth-anything/Depth-Anything-V2-Small" in err
    assert "Traceback" not in err and not (tmp_path / "out").exists()


def test_corrupted_checkpoint_is_a_clear_error(tmp_path: Path, models_dir: Path, capsys) -> None:
    broken = tmp_path / "broken.pth"
    data = (models_dir / "depth_anything_v2_vits.pth").read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    random_image(tmp_path / "x.png", 32, 32, seed=0)
    code, err = run_cli(
        [str(tmp_path / "x.png"), "-o", str(tmp_path / "out"), "--checkpoint", str(broken)], models_dir, capsys
    )
    assert code == 2
    assert "broken.pth" in err and "truncated or corrupted" in err and "Traceback" not in err


def test_checkpoint_of_another_encoder_than_asked(tmp_path: Path, models_dir: Path, capsys) -> None:
    random_image(tmp_path / "x.png", 32, 32, seed=0)
    code, err = run_cli(
        [
            str(tmp_path / "x.png"),
            "-o",
            str(tmp_path / "out"),
            "--encoder",
            "vitb",
            "--checkpoint",
            str(models_dir / "depth_anything_v2_vits.pth"),
        ],
        models_dir,
        capsys,
    )
    assert code == 2 and "holds a vits model" in err and "vitb" in err


def test_missing_input_path(tmp_path: Path, models_dir: Path, capsys) -> None:
    code, err = run_cli([str(tmp_path / "nope.jpg"), "-o", str(tmp_path / "out")], models_dir, capsys)
    assert code == 2 and "input not found" in err and "nope.jpg" in err


def test_unsupported_file_and_bad_arguments(tmp_path: Path, models_dir: Path, capsys) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    code, err = run_cli([str(tmp_path / "notes.txt")], models_dir, capsys)
    assert code == 2 and "unsupported file type '.txt'" in err
    with pytest.raises(SystemExit) as exit_info:
        cli.main([str(tmp_path / "notes.txt"), "--input-size", "10"])
    assert exit_info.value.code == 2 and "at least 14" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main([str(tmp_path / "notes.txt"), "--batch-size", "0"])
    assert "must be at least 1" in capsys.readouterr().err


def test_unreadable_image_is_skipped_and_counted(tmp_path: Path, models_dir: Path, capsys) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    random_image(folder / "good.png", 40, 40, seed=0)
    (folder / "bad.jpg").write_bytes(b"not a jpeg at all")
    (folder / "empty.png").write_bytes(b"")
    (folder / "fake.mp4").write_bytes(b"not a video")
    out = tmp_path / "out"
    code, err = run_cli([str(folder), "-o", str(out)], models_dir, capsys)
    assert code == 1
    assert "bad.jpg" in err and "empty.png" in err and "fake.mp4: cannot open it as a video" in err
    assert "3 inputs failed" in err
    assert (out / "good_depth.png").is_file() and not (out / "bad_depth.png").exists()


def garbage_in_the_middle(photo: Path, seed: int) -> bytes:
    """The photo's bytes with 4 KB of random garbage written over the middle of its compressed data."""
    data = photo.read_bytes()
    middle = len(data) // 2
    garbage = np.random.default_rng(seed).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    return data[:middle] + garbage + data[middle + 4096 :]


def test_jpeg_with_corrupt_data_is_refused_not_decoded_grey(tmp_path: Path, shared_images: list[Path]) -> None:
    photo = min(shared_images, key=lambda p: p.stat().st_size)  # the smallest real photo: quick
    assert io.read_image(photo).shape[2] == 3
    for seed in range(6):  # garbage that libjpeg only warns about ("Corrupt JPEG data") and garbage it rejects
        broken = tmp_path / f"broken{seed}.jpg"
        broken.write_bytes(garbage_in_the_middle(photo, seed))
        assert cv2.imread(str(broken)) is not None  # OpenCV alone would decode it (partly grey)
        with pytest.raises(io.ImageReadError, match="corrupt JPEG data"):
            io.read_image(broken)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(photo.read_bytes()[: photo.stat().st_size // 2])
    with pytest.raises(io.ImageReadError, match="corrupt JPEG data"):
        io.read_image(truncated)


def test_corrupt_jpeg_is_skipped_with_a_warning(
    tmp_path: Path, models_dir: Path, shared_images: list[Path], capsys
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    random_image(folder / "good.png", 40, 40, seed=0)
    (folder / "broken.jpg").write_bytes(garbage_in_the_middle(min(shared_images, key=lambda p: p.stat().st_size), 2))
    out = tmp_path / "out"
    code, err = run_cli([str(folder), "-o", str(out)], models_dir, capsys)
    assert code == 1
    assert "skipped" in err and "broken.jpg" in err and "corrupt JPEG data" in err and "1 inputs failed" in err
    assert (out / "good_depth.png").is_file() and not (out / "broken_depth.png").exists()


def test_output_folder_may_be_the_input_folder(tmp_path: Path, models_dir: Path, capsys) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    random_image(folder / "a.png", 40, 40, seed=0)
    for _ in range(2):  # the second run skips the first run's outputs instead of reading them as inputs
        code, err = run_cli([str(folder), "-o", str(folder), "--npy"], models_dir, capsys)
        assert code == 0, err
        assert sorted(p.name for p in folder.iterdir()) == ["a.png", "a_depth.npy", "a_depth.png", "a_depth_color.png"]


def test_folder_holding_only_earlier_outputs_says_so(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    (folder / "clip_depth_frames").mkdir(parents=True)
    for name in ("a_depth.png", "a_depth_color.png", "clip_depth.mp4", "clip_depth_frames/000001.png"):
        (folder / name).write_bytes(b"x")
    with pytest.raises(io.InputError, match="all outputs of an earlier run"):
        io.collect_inputs([folder], recursive=True, exclude=folder)
    (folder / "photo.png").write_bytes(b"x")
    assert [f.path.name for f in io.collect_inputs([folder], recursive=True, exclude=folder)] == ["photo.png"]
    # outside the output folder, a name ending _depth.png is an input like any other
    assert [f.path.name for f in io.collect_inputs([folder], exclude=tmp_path / "elsewhere")][:2] == [
        "a_depth.png",
        "a_depth_color.png",
    ]


def test_interrupted_write_leaves_no_partial_file(tmp_path: Path, models_dir: Path, capsys, monkeypatch) -> None:
    random_image(tmp_path / "x.png", 40, 40, seed=0)
    real_save = np.save

    def save_half_then_interrupt(file, array, allow_pickle=False):
        buffer = __import__("io").BytesIO()
        real_save(buffer, array, allow_pickle=allow_pickle)
        file.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(io.writing.np, "save", save_half_then_interrupt)  # write_npy lives in io.writing
    out = tmp_path / "out"
    code, err = run_cli([str(tmp_path / "x.png"), "-o", str(out), "--npy"], models_dir, capsys)
    assert code == 130 and "interrupted" in err
    assert not (out / "x_depth.npy").exists()
    assert sorted(p.name for p in out.iterdir()) == ["x_depth.png", "x_depth_color.png"]  # no temp file
    assert cv2.imread(str(out / "x_depth.png"), cv2.IMREAD_UNCHANGED).shape == (40, 40)


def test_interrupted_video_leaves_no_partial_video(tmp_path: Path, models_dir: Path, capsys, monkeypatch) -> None:
    video = tmp_path / "clip.mp4"
    write_video(video, 8)
    real_write = DepthVideoWriter.write

    def write_then_fail(self, frame, pts):
        if self.frames == 3:
            raise KeyboardInterrupt
        real_write(self, frame, pts)

    monkeypatch.setattr(DepthVideoWriter, "write", write_then_fail)
    out = tmp_path / "out"
    code, _ = run_cli([str(video), "-o", str(out), "--batch-size", "2"], models_dir, capsys)
    assert code == 130
    assert list(out.iterdir()) == []


# ------------------------------------------------------------------------------------ io helpers
def test_collect_inputs_order_collisions_and_output_exclusion(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    for name in ("b.jpg", "a.png", "a.jpg", "clip.MP4", "readme.txt", "sub/c.png"):
        (folder / name).write_bytes(b"x")
    (folder / "out").mkdir()
    (folder / "out" / "a_depth.png").write_bytes(b"x")
    flat = io.collect_inputs([folder], exclude=folder / "out")
    assert [(f.path.name, f.kind, str(f.out_stem)) for f in flat] == [
        ("a.jpg", "image", "a_jpg"),
        ("a.png", "image", "a_png"),
        ("b.jpg", "image", "b"),
        ("clip.MP4", "video", "clip"),
    ]
    deep = io.collect_inputs([folder, folder / "b.jpg"], recursive=True, exclude=folder / "out")
    assert [str(f.out_stem) for f in deep] == ["a_jpg", "a_png", "b", "clip", os.path.join("sub", "c")]
    nested = tmp_path / "nested"
    (nested / "deeper").mkdir(parents=True)
    (nested / "deeper" / "x.png").write_bytes(b"x")
    with pytest.raises(io.InputError, match="use --recursive"):  # only a subfolder has images
        io.collect_inputs([nested])
    assert [f.out_stem for f in io.collect_inputs([nested], recursive=True)] == [Path("deeper/x")]


def test_read_image_keeps_16_bit_and_expands_grey(tmp_path: Path) -> None:
    grey16 = np.array([[0, 65535], [32768, 1000]], dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "g.png"), grey16)
    image = io.read_image(tmp_path / "g.png")
    assert image.shape == (2, 2, 3) and image.dtype == np.float32
    np.testing.assert_allclose(image[..., 0], grey16 / 65535.0, atol=1e-7)
    assert io.probe_image_size(tmp_path / "g.png") == (2, 2)
    with pytest.raises(io.ImageReadError, match="not a readable image"):
        (tmp_path / "bad.png").write_bytes(b"\x89PNG broken")
        io.read_image(tmp_path / "bad.png")


def test_probe_size_matches_decoded_size_for_exif_rotated_photos(tmp_path: Path) -> None:
    from PIL import Image

    photo = Image.fromarray(np.zeros((40, 60, 3), np.uint8))
    exif = photo.getexif()
    exif[0x0112] = 6  # "rotate 90 CW": decoded as 60 high, 40 wide
    photo.save(tmp_path / "rotated.jpg", exif=exif)
    assert io.probe_image_size(tmp_path / "rotated.jpg") == (60, 40)
    assert io.read_image(tmp_path / "rotated.jpg").shape == (60, 40, 3)


def test_compile_flag_goes_through_accel_and_falls_back(
    tmp_path: Path, models_dir: Path, model, capsys, monkeypatch
) -> None:
    """--compile compiles the model; where torch.compile fails, the run still succeeds on plain PyTorch."""
    random_image(tmp_path / "photo.jpg", 56, 84, seed=7)
    decoded = cv2.cvtColor(cv2.imread(str(tmp_path / "photo.jpg")), cv2.COLOR_BGR2RGB)
    compiled_calls = []

    def failing_compile(fn, **kwargs):
        def compiled(x):
            compiled_calls.append(kwargs)
            raise RuntimeError("no working C++ compiler")

        return compiled

    monkeypatch.setattr(torch, "compile", failing_compile)
    with pytest.warns(RuntimeWarning, match="torch.compile is unavailable or failed"):
        code, err = run_cli(
            [str(tmp_path / "photo.jpg"), "-o", str(tmp_path / "o"), "--npy", "--compile"], models_dir, capsys
        )
    assert code == 0, err
    assert len(compiled_calls) == 1 and compiled_calls[0]["backend"].options["freezing"] is True
    expected = predict_depth(model, torch.from_numpy(decoded.astype(np.float32) / 255)[None], input_size=70)[0]
    np.testing.assert_allclose(
        np.load(tmp_path / "o" / "photo_depth.npy"),
        expected.numpy(),
        rtol=0,
        atol=1e-5 * float(expected.max() - expected.min()),
    )


@pytest.mark.parametrize(("old", "statistic"), [("per_image", "min_max"), ("percentile", "percentile")])
@pytest.mark.parametrize(("old_scope", "scope"), [("two_pass", "clip"), ("running", "running"), ("per_frame", "image")])
def test_cli_range_flags_take_current_and_older_names(old, statistic, old_scope, scope):
    """--normalize and --video-range offer the range vocabulary (dav2_core.ranges) and still take the names older
    scripts use, as the same choice; the defaults are min_max / clip (what per_image / two_pass were)."""
    from dav2_core.cli import args, live

    for names in ((statistic, scope), (old, old_scope)):
        options = args.parse_options(["x.png", "--normalize", names[0], "--video-range", names[1]])
        assert (options.estimate.normalization, options.video_range) == (statistic, scope)
    defaults = args.parse_options(["x.png"])
    assert (defaults.estimate.normalization, defaults.video_range) == ("min_max", "clip")
    streamed = {a.dest: a for a in live.build_parser()._actions}["normalize"]
    assert tuple(streamed.choices) == ("min_max", "percentile") and streamed.default == "min_max"
    assert live.build_parser().parse_args(["0", "--normalize", old]).normalize == statistic


def test_cli_help_shows_the_current_names_and_says_older_ones_work(capsys) -> None:
    from dav2_core.cli import args

    text = " ".join(args.build_parser().format_help().split())
    assert "--normalize {min_max,percentile}" in text and "--video-range {clip,running,image}" in text
    assert "per_image is accepted" in text
    assert "older names accepted: two_pass = clip, per_frame = image" in text


@pytest.mark.parametrize(
    ("argv", "choices"),
    [
        (["--normalize", "auto"], "choose one of min_max, percentile"),
        (["--video-range", "sideways"], "choose one of clip, running, image"),
    ],
)
def test_cli_unknown_range_name_exits_2_naming_the_choices(argv, choices, capsys) -> None:
    from dav2_core.cli import args, live

    parsers = [lambda: args.parse_options(["x.png", *argv])]
    if argv[0] == "--normalize":  # dav2 live has --normalize too, no --video-range
        parsers.append(lambda: live.build_parser().parse_args(["0", *argv]))
    for parse in parsers:
        with pytest.raises(SystemExit) as exit_info:
            parse()
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert repr(argv[1]) in err and choices in err and "Traceback" not in err, err


def test_cli_older_range_names_write_identical_files(tmp_path: Path, models_dir: Path, capsys) -> None:
    """A script with the older names (--normalize per_image, --video-range two_pass / per_frame) writes the very
    files the current names write: PNGs byte for byte, the depth video frame for frame (and its metadata)."""
    import av

    random_image(tmp_path / "p.png", 40, 56, seed=5)
    write_video(tmp_path / "clip.mp4", 6)
    runs = {
        "old": ["--normalize", "per_image", "--video-range", "two_pass"],
        "new": ["--normalize", "min_max", "--video-range", "clip"],
        "old_frame": ["--normalize", "per_image", "--video-range", "per_frame"],
        "new_frame": ["--normalize", "min_max", "--video-range", "image"],
    }
    for name, flags in runs.items():
        inputs = [str(tmp_path / "p.png")] if name in ("old", "new") else []
        code, err = run_cli(
            [*inputs, str(tmp_path / "clip.mp4"), "-o", str(tmp_path / name), *flags], models_dir, capsys
        )
        assert code == 0, err

    def video(folder: str) -> tuple[np.ndarray, dict]:
        with av.open(str(tmp_path / folder / "clip_depth.mp4")) as container:
            frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
            return frames, dict(container.metadata)

    for old, new in (("old", "new"), ("old_frame", "new_frame")):
        old_files = sorted(p.name for p in (tmp_path / old).iterdir())
        assert old_files == sorted(p.name for p in (tmp_path / new).iterdir()) and "clip_depth.mp4" in old_files
        for name in old_files:
            if name.endswith(".png"):
                assert (tmp_path / old / name).read_bytes() == (tmp_path / new / name).read_bytes(), name
        (old_frames, old_meta), (new_frames, new_meta) = video(old), video(new)
        assert len(old_frames) == 6 and np.array_equal(old_frames, new_frames) and old_meta == new_meta
    assert not np.array_equal(video("new")[0], video("new_frame")[0])  # the comparison can tell ranges apart
