"""Video Depth Anything on a real ComfyUI server: Load Video -> Load Depth Anything V2 (a VDA file) -> Video Depth
-> Save Video, the shipped example workflow, cancel mid-clip, Estimate Depth on a frame batch, and the refusal
of a single image (a clear message in the execution error, no crash)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from checkpoint_factory import write_checkpoint
from comfy_harness import (
    MODEL_FOLDER,
    assert_success,
    estimate_graph,
    example_video_graph,
    execution_error,
    node_id_of,
    video_depth_graph,
)
from dav2_core.loading import load_model
from dav2_core.vda import OfflineVDA
from video_clips import decoded, write_clip

pytestmark = pytest.mark.server

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
    """Load Video (1) -> Load Depth Anything V2 (2, the VDA file) -> Video Depth (3, ``video_depth``) -> Save Video (4)."""
    settings = {"image_sequence": "npy", "filename_prefix": "video/dav2_vda", **video_depth}
    return video_depth_graph(CLIP, VDA_FILE, "video/dav2_vda_saved", **settings)


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
    api = example_video_graph(vda_server, "video_depth_anything", CLIP)
    assert api[node_id_of(api, "DAV2ModelLoader")]["inputs"]["model"] == VDA_FILE
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

    def api(amount: int) -> dict:
        graph, _, estimate = estimate_graph("dav2_vda_frame.png", VDA_FILE, repeat=amount)
        graph.add("PreviewImage", images=estimate["depth_image"])
        return graph.to_api()

    assert_success(vda_server, vda_server.run(api(3)))
    entry = vda_server.run(api(1))
    assert entry["status"]["status_str"] == "error"
    assert "not single images" in json.dumps(execution_error(entry))
