"""Video Depth Anything through the pack's paths: the streamed video core, estimate() on frame batches,
checkpoint recognition and loading, and the bad inputs of issue 19 (each a clear error or documented result)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from checkpoint_factory import write_checkpoint
from dav2_core.checkpoints import CheckpointError, load_checkpoint
from dav2_core.loading import load_model
from dav2_core.pipeline import EstimateOptions, estimate
from dav2_core.video import VideoError, VideoOptions, depth_video
from dav2_core.vda import OfflineVDA, OnlineVDA, vda_input_size, vda_net_size
from video_clips import decoded, write_clip

SMALL = EstimateOptions(input_size=28, chunk_size=5)


def frames(count: int, height: int = 28, width: int = 42, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (height, width, 3)).astype(np.float32)
    return np.stack([np.roll(base, t, axis=1) * (0.7 + 0.3 * np.sin(t / 4)) for t in range(count)]).astype(np.uint8)


@pytest.fixture(scope="module")
def vda(tmp_path_factory):
    folder = tmp_path_factory.mktemp("vda")
    return load_model(
        write_checkpoint(folder / "video_depth_anything_vits.pth", "vits", "official-pth", family="vda"), "cpu"
    )


@pytest.fixture(scope="module")
def dav2(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dav2")
    return load_model(write_checkpoint(folder / "depth_anything_v2_vits.pth", "vits", "official-pth"), "cpu")


@pytest.fixture(scope="module")
def clip35(tmp_path_factory):
    return write_clip(tmp_path_factory.mktemp("clips") / "clip35.mkv", frames(35))


def direct(model, clip: np.ndarray, streaming: bool = False) -> np.ndarray:
    runner = (OnlineVDA if streaming else OfflineVDA)(model, 28)
    return torch.cat([runner.push(torch.from_numpy(clip)), runner.finish()]).numpy()


# ------------------------------------------------------------------------------------------ checkpoints
def test_vda_checkpoints_are_recognised_from_tensors_and_names(tmp_path):
    sd, info = load_checkpoint(
        write_checkpoint(tmp_path / "video_depth_anything_vits.pth", "vits", "official-pth", family="vda")
    )
    assert (info.family, info.encoder, info.kind, info.max_depth, info.kind_source) == (
        "vda",
        "vits",
        "relative",
        None,
        "file name",
    )
    assert any(k.startswith("head.motion_modules.") for k in sd)
    _, metric = load_checkpoint(
        write_checkpoint(tmp_path / "metric_video_depth_anything_vits.pth", "vits", "official-pth", family="vda")
    )
    assert (metric.kind, metric.max_depth, metric.kind_source) == ("metric", None, "file name")
    _, meta = load_checkpoint(
        write_checkpoint(tmp_path / "mine.safetensors", "vits", "official-safetensors", kind="metric", family="vda")
    )
    assert (meta.kind, meta.kind_source) == ("metric", "metadata")
    _, override = load_checkpoint(tmp_path / "metric_video_depth_anything_vits.pth", kind="relative")
    assert (override.kind, override.kind_source) == ("relative", "override")
    # A DA-V2 metric file name on VDA tensors says nothing about them (family differs): default relative.
    renamed = tmp_path / "depth_anything_v2_metric_hypersim_vits.pth"
    renamed.write_bytes((tmp_path / "video_depth_anything_vits.pth").read_bytes())
    assert load_checkpoint(renamed)[1].kind == "relative"


def test_max_depth_is_refused_for_vda(tmp_path):
    path = write_checkpoint(tmp_path / "video_depth_anything_vits.pth", "vits", "official-pth", family="vda")
    with pytest.raises(ValueError, match="outputs metres directly"):
        load_checkpoint(path, kind="metric", max_depth=20.0)


def test_truncated_vda_file_is_a_clear_error(tmp_path):
    path = write_checkpoint(tmp_path / "video_depth_anything_vits.pth", "vits", "official-pth", family="vda")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="video_depth_anything_vits.pth"):
        load_checkpoint(path)


def test_incomplete_vda_state_dict_names_the_model(tmp_path):
    from checkpoint_factory import make_state_dict

    sd = {k: v for k, v in make_state_dict("vits", 0, "vda").items() if "motion_modules.3" not in k}
    torch.save(sd, tmp_path / "broken.pth")
    with pytest.raises(CheckpointError, match="Video Depth Anything model.*missing"):
        load_checkpoint(tmp_path / "broken.pth")


def test_dav2_file_under_a_vda_variant_name_is_refused(tmp_path):
    write_checkpoint(tmp_path / "video_depth_anything_vits.pth", "vits", "official-pth")  # DA-V2 tensors
    with pytest.raises(ValueError, match="holds a Depth Anything V2 model, but variant vda_vits is Video Depth"):
        load_model("vda_vits", "cpu", models_dir=tmp_path)


def test_vda_variant_offline_download_error_is_actionable(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(Exception, match="Video-Depth-Anything-Small") as err:
        load_model("vda_vits", "cpu", models_dir=tmp_path)
    assert "video_depth_anything_vits.pth" in str(err.value)


def test_fp16_on_cpu_is_refused_for_vda(tmp_path):
    path = write_checkpoint(tmp_path / "video_depth_anything_vits.pth", "vits", "official-pth", family="vda")
    with pytest.raises(ValueError, match="fp16 is not supported on the CPU"):
        load_model(path, "cpu", dtype="fp16")


def test_vda_has_no_export_backends(tmp_path):
    with pytest.raises(ValueError, match="torch backend only"):
        load_model("vda_vits", "cpu", backend="onnxruntime", models_dir=tmp_path)


# --------------------------------------------------------------------------------------- resize rule
def test_official_input_size_reduction_above_ratio_1_78():
    assert vda_input_size(1080, 1920, 518) == 518  # 1.777: unchanged
    assert vda_input_size(1000, 2000, 518) == round(int(518 * 1.777 / 2.0) / 14) * 14 == 462
    assert vda_net_size(1000, 2000, 518) == (462, 924)
    with pytest.raises(ValueError, match="too elongated"):
        vda_input_size(10, 4000, 518)


# ------------------------------------------------------------------------------------------ estimate()
def test_estimate_treats_an_image_batch_as_a_clip(vda):
    clip = frames(9)
    result = estimate(vda, torch.from_numpy(clip), SMALL)
    np.testing.assert_allclose(result.depth.values.numpy(), direct(vda, clip), rtol=0, atol=1e-6)
    assert result.depth.batch == 9


def test_vda_single_image_and_tiles_get_what_to_do_instead(vda):
    one = torch.from_numpy(frames(1))
    with pytest.raises(ValueError, match="not single images.*Depth Anything V2"):
        estimate(vda, one, SMALL)
    with pytest.raises(ValueError, match="cannot use resolution 'tiled'"):
        estimate(vda, torch.from_numpy(frames(3)), SMALL.with_(resolution="tiled"))
    with pytest.raises(ValueError, match="tta 'flip'"):
        estimate(vda, torch.from_numpy(frames(3)), SMALL.with_(flip_tta=True))
    with pytest.raises(ValueError, match="tta 'multi_scale'"):
        estimate(vda, torch.from_numpy(frames(3)), SMALL.with_(tta="multi_scale", input_size=56))
    from dav2_core.inference import predict_depth

    with pytest.raises(ValueError, match="not single images"):
        predict_depth(vda, one, 28)


def test_dav2_model_where_vda_is_required(dav2, clip35, tmp_path):
    with pytest.raises(ValueError, match="need a Video Depth Anything checkpoint"):
        OfflineVDA(dav2)
    with pytest.raises(ValueError, match="need a Video Depth Anything checkpoint"):
        depth_video(dav2, clip35, tmp_path / "d.mp4", VideoOptions(estimate=SMALL, vda_mode="streaming"))
    assert not (tmp_path / "d.mp4").exists()


def test_frame_size_change_mid_clip_is_refused(vda):
    runner = OfflineVDA(vda, 28)
    runner.push(torch.from_numpy(frames(3)))
    with pytest.raises(ValueError, match="every frame of a clip must have the same size"):
        runner.push(torch.from_numpy(frames(2, 30, 42)))


# ------------------------------------------------------------------------------------------ video core
@pytest.mark.parametrize("range_mode, cache", [("clip", "disk"), ("clip", "recompute"), ("running", "auto")])
def test_video_core_runs_vda_windows_exactly(vda, clip35, tmp_path, range_mode, cache):
    options = VideoOptions(estimate=SMALL, range_mode=range_mode, cache=cache, sequence=("npy",))
    report = depth_video(vda, clip35, tmp_path / "d.mp4", options)
    assert report.frames == 35
    assert decoded(tmp_path / "d.mp4")[1] == pytest.approx([i / 10 for i in range(35)], abs=1e-3)
    raw = np.stack([np.load(tmp_path / "d_frames" / f"{i:06d}.npy")[0] for i in range(35)])
    np.testing.assert_allclose(raw, direct(vda, frames(35)), rtol=0, atol=1e-6)


def test_video_core_streaming_mode(vda, clip35, tmp_path):
    options = VideoOptions(estimate=SMALL, range_mode="running", sequence=("npy",), vda_mode="streaming")
    report = depth_video(vda, clip35, tmp_path / "d.mp4", options)
    raw = np.stack([np.load(tmp_path / "d_frames" / f"{i:06d}.npy")[0] for i in range(35)])
    assert report.frames == 35
    np.testing.assert_allclose(raw, direct(vda, frames(35), streaming=True), rtol=0, atol=1e-6)


@pytest.mark.parametrize("count", [1, 10])
def test_clips_shorter_than_a_window(vda, tmp_path, count):
    path = write_clip(tmp_path / "short.mkv", frames(count))
    report = depth_video(vda, path, tmp_path / "d.mp4", VideoOptions(estimate=SMALL))
    assert report.frames == count and len(decoded(tmp_path / "d.mp4")[0]) == count


def test_odd_frame_sizes(vda, tmp_path):
    path = write_clip(tmp_path / "odd.mkv", frames(5, 27, 41))
    report = depth_video(vda, path, tmp_path / "d.mp4", VideoOptions(estimate=SMALL, sequence=("npy",)))
    assert report.frames == 5 and np.load(tmp_path / "d_frames" / "000000.npy").shape[-2:] == (27, 41)


def test_cancel_mid_clip_leaves_nothing(vda, clip35, tmp_path):
    calls = []

    def cancel():
        calls.append(1)
        if len(calls) == 2:
            raise InterruptedError("cancelled")

    with pytest.raises(InterruptedError):
        depth_video(
            vda, clip35, tmp_path / "d.mp4", VideoOptions(estimate=SMALL, sequence=("npy",)), check_cancel=cancel
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.skipif(
    hasattr(__import__("os"), "geteuid") and __import__("os").geteuid() == 0, reason="root ignores modes"
)
def test_unwritable_output_folder(vda, clip35, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(VideoError):
            depth_video(vda, clip35, folder / "d.mp4", VideoOptions(estimate=SMALL))
    finally:
        folder.chmod(0o700)
    assert list(folder.iterdir()) == []


def test_vda_video_refuses_tiles_and_refine(vda, clip35, tmp_path):
    for bad in (SMALL.with_(resolution="tiled"), SMALL.with_(refine=0.5)):
        with pytest.raises(ValueError, match="Video Depth Anything cannot use"):
            depth_video(vda, clip35, tmp_path / "d.mp4", VideoOptions(estimate=bad))
    assert not (tmp_path / "d.mp4").exists()


# ------------------------------------------------------------------------------------------------- CLI
def test_cli_runs_vda_on_a_video(tmp_path, clip35, capsys):
    from dav2_core.cli import main

    ckpt = write_checkpoint(tmp_path / "video_depth_anything_vits.pth", "vits", "official-pth", family="vda")
    out = tmp_path / "out"
    args = [str(clip35), "--checkpoint", str(ckpt), "--input-size", "28", "--npy", "-q", "-o", str(out)]
    assert main(args) == 0
    assert len(decoded(out / "clip35_depth.mp4")[0]) == 35
    raw = np.stack([np.load(out / "clip35_depth_frames" / f"{i:06d}.npy")[0] for i in range(35)])
    model = load_model(ckpt, "cpu")
    np.testing.assert_allclose(raw, direct(model, frames(35)), rtol=0, atol=1e-6)
    assert main([*args[:-1], str(tmp_path / "online"), "--streaming"]) == 0
    raw = np.stack([np.load(tmp_path / "online" / "clip35_depth_frames" / f"{i:06d}.npy")[0] for i in range(35)])
    np.testing.assert_allclose(raw, direct(model, frames(35), streaming=True), rtol=0, atol=1e-6)


def test_cli_vda_bad_combinations(tmp_path, clip35, capsys):
    from PIL import Image

    from dav2_core.cli import main

    vda_ckpt = write_checkpoint(tmp_path / "video_depth_anything_vits.pth", "vits", "official-pth", family="vda")
    dav2_ckpt = write_checkpoint(tmp_path / "depth_anything_v2_vits.pth", "vits", "official-pth")
    out = str(tmp_path / "out")
    assert main([str(clip35), "--checkpoint", str(dav2_ckpt), "--streaming", "-q", "-o", out]) == 2
    assert "--streaming is Video Depth Anything's online mode" in capsys.readouterr().err
    assert main([str(clip35), "--checkpoint", str(dav2_ckpt), "--encoder", "vda_vits", "-q", "-o", out]) == 2
    assert "is Video Depth Anything" in capsys.readouterr().err
    image = tmp_path / "photo.png"
    Image.fromarray(frames(1)[0]).save(image)
    assert main([str(image), "--checkpoint", str(vda_ckpt), "--input-size", "28", "-q", "-o", out]) == 1
    assert "not single images" in capsys.readouterr().err
    assert not (tmp_path / "out" / "photo_depth.png").exists()


def test_dav2_batch_refuses_a_vda_variant(tmp_path, capsys):
    from PIL import Image

    from dav2_core.cli.batch import main as batch_main

    (tmp_path / "in").mkdir()
    Image.fromarray(frames(1)[0]).save(tmp_path / "in" / "a.png")
    assert batch_main([str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--encoder", "vda_vits"]) == 2
    assert "dav2 batch treats every image alone" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_onnx_export_refuses_vda(vda, tmp_path):
    from dav2_core.engines.export import ExportError, export_onnx

    with pytest.raises(ExportError, match="Video Depth Anything has no ONNX export"):
        export_onnx(vda, tmp_path / "vda.onnx", dynamic=True)
    assert not (tmp_path / "vda.onnx").exists()
