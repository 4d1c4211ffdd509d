"""Video Depth Anything on a real ComfyUI server: Load Video -> Load Depth Anything V2 (a VDA file) -> Video Depth
-> Save Video, the shipped example workflow, cancel mid-clip, Estimate Depth on a frame batch, and the refusal
of a single image (a clear message in the execution error, no crash)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from checkpoint_factory import write_checkpoint
from comfy_harness import MODEL_FOLDER, execution_error, node_id_of, set_inputs, ui_to_api
from dav2_core.loading import load_model
from dav2_core.vda import OfflineVDA
from video_clips import decoded, write_clip

pytestmark = pytest.mark.server

ROOT = Path(__file__).resolve().parents[2]
CLIP = "dav2_vda_test.mkv"
VDA_FILE = "video_depth_anything_vits.pth"
FRAMES = 26  # two windows


def clip_frames() -> np.ndarray:
    rng = np.random.default_rng(1)
    base = rng.integers(0, 256, (28, 42, 3)).astype(np.float32)
    return np.stack([np.roll(base, t, axis=1) * (0.7 + 0.3 * np.sin(t / 4)) for t in range(FRAMES)]).astype(np.uint8)


@pytest.fixture(scope="module")
def vda_server(comfy_server):
    """The shared server with a random VDA checkpoint in its model folder and a lossless clip in its input folder
    (both removed afterwards: the server is shared)."""
    ckpt = comfy_server.base_dir / "models" / MODEL_FOLDER / VDA_FILE
    write_checkpoint(ckpt, "vits", "official-pth", family="vda")
    clip = write_clip(comfy_server.input_dir / CLIP, clip_frames())
    yield comfy_server
    ckpt.unlink(missing_ok=True)
    clip.unlink(missing_ok=True)


def graph(**video_depth) -> dict:
    settings = {
        "input_size": 28,
        "resolution": "keep_aspect",
        "max_side": 1932,
        "normalization": "two_pass",
        "range_statistic": "min_max",
        "invert": False,
        "colormap": "gray",
        "start_frame": 0,
        "frame_count": 0,
        "frame_stride": 1,
        "chunk_size": 4,
        "image_sequence": "npy",
        "filename_prefix": "video/dav2_vda",
        **video_depth,
    }
    return {
        "1": {"class_type": "LoadVideo", "inputs": {"file": CLIP}},
        "2": {
            "class_type": "DAV2ModelLoader",
            "inputs": {"model": VDA_FILE, "precision": "fp32", "checkpoint_type": "auto", "device": "auto"},
        },
        "3": {"class_type": "DAV2VideoDepth", "inputs": {"model": ["2", 0], "video": ["1", 0], **settings}},
        "4": {
            "class_type": "SaveVideo",
            "inputs": {"video": ["3", 0], "filename_prefix": "video/dav2_vda_saved", "format": "auto", "codec": "auto"},
        },
    }


def assert_success(server, entry: dict) -> None:
    assert entry["status"]["status_str"] == "success", json.dumps(execution_error(entry))[:3000] + server.log_tail(3000)


def test_video_depth_runs_vda_windows(vda_server):
    entry = vda_server.run(graph())
    assert_success(vda_server, entry)
    (saved,) = vda_server.output_files(entry, "4")
    frames, times = decoded(saved)
    assert len(frames) == FRAMES and times == pytest.approx([i / 10 for i in range(FRAMES)], abs=1e-3)
    folder = sorted((vda_server.output_dir / "video").glob("dav2_vda_*_frames"))[-1]
    raw = np.stack([np.load(folder / f"{i:06d}.npy")[0] for i in range(FRAMES)])
    model = load_model(vda_server.base_dir / "models" / MODEL_FOLDER / VDA_FILE, "cpu")
    runner = OfflineVDA(model, 28)
    expected = torch.cat([runner.push(torch.from_numpy(clip_frames())), runner.finish()]).numpy()
    np.testing.assert_allclose(raw, expected, rtol=0, atol=1e-5)  # the node ran the official windows


def test_example_workflow_runs_as_shipped(vda_server):
    workflow = json.loads((ROOT / "example_workflows" / "video_depth_anything.json").read_text(encoding="utf-8"))
    api = ui_to_api(workflow, vda_server.object_info())
    assert api[node_id_of(api, "DAV2ModelLoader")]["inputs"]["model"] == VDA_FILE
    set_inputs(api, "LoadVideo", file=CLIP)
    set_inputs(api, "DAV2VideoDepth", input_size=28)
    entry = vda_server.run(api)
    assert_success(vda_server, entry)
    (saved,) = vda_server.output_files(entry, node_id_of(api, "SaveVideo"))
    assert len(decoded(saved)[0]) == FRAMES


def test_cancel_mid_clip_leaves_no_partial_output(vda_server):
    temp = vda_server.base_dir / "temp" / "dav2_video"
    before = set(temp.glob("*")) if temp.exists() else set()
    sequences = set((vda_server.output_dir / "video").glob("*"))
    result = vda_server.run_and_interrupt(
        graph(chunk_size=1, filename_prefix="video/vda_cancelled"), node_id="3", after=1
    )
    assert result["end"] == "execution_interrupted", result
    assert (set(temp.glob("*")) if temp.exists() else set()) == before
    assert set((vda_server.output_dir / "video").glob("*")) == sequences


def test_estimate_depth_on_a_frame_batch_and_a_single_image(vda_server):
    from PIL import Image

    Image.fromarray(clip_frames()[0]).save(vda_server.input_dir / "dav2_vda_frame.png")
    estimate = {
        "input_size": 28,
        "resolution": "keep_aspect",
        "max_side": 1932,
        "normalization": "per_image",
        "invert": False,
        "chunk_size": 0,
    }

    def api(amount: int) -> dict:
        return {
            "1": {"class_type": "LoadImage", "inputs": {"image": "dav2_vda_frame.png"}},
            "2": {"class_type": "RepeatImageBatch", "inputs": {"image": ["1", 0], "amount": amount}},
            "3": {
                "class_type": "DAV2ModelLoader",
                "inputs": {"model": VDA_FILE, "precision": "fp32", "checkpoint_type": "auto", "device": "auto"},
            },
            "4": {"class_type": "DAV2EstimateDepth", "inputs": {"model": ["3", 0], "image": ["2", 0], **estimate}},
            "5": {"class_type": "PreviewImage", "inputs": {"images": ["4", 0]}},
        }

    assert_success(vda_server, vda_server.run(api(3)))
    entry = vda_server.run(api(1))
    assert entry["status"]["status_str"] == "error"
    assert "not single images" in json.dumps(execution_error(entry))
