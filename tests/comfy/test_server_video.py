"""Video Depth on a real ComfyUI server with core Load Video and Save Video: frames, timing, audio, the image
sequence, the example workflow as shipped, cancel mid-clip (nothing partial left), bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from comfy_harness import (
    TEST_CHECKPOINT,
    assert_success,
    example_video_graph,
    execution_error,
    node_id_of,
    video_depth_graph,
)
from video_clips import decoded, stamped_frame, streams, write_clip

pytestmark = pytest.mark.server

CLIP = "dav2_video_test.mp4"
FRAMES = 9


@pytest.fixture(scope="module")
def clip(comfy_server) -> Path:
    """9 frames at 10 fps with an AAC track, in the server's input folder."""
    rng = np.random.default_rng(0)
    frames = [
        np.concatenate([stamped_frame(i), rng.integers(0, 255, (16, 128, 3), dtype=np.uint8)]) for i in range(FRAMES)
    ]
    return write_clip(comfy_server.input_dir / CLIP, frames, codec="libx264", pix_fmt="yuv420p", audio="aac")


def graph(**video_depth) -> dict:
    """Load Video (1) -> Load Depth Anything V2 (2) -> Video Depth (3, ``video_depth``) -> Save Video (4)."""
    settings = {"filename_prefix": "video/dav2_test", **video_depth}
    return video_depth_graph(CLIP, TEST_CHECKPOINT, "video/dav2_saved", **settings)


def test_load_video_to_video_depth_to_save_video(comfy_server, clip):
    entry = comfy_server.run(graph(image_sequence="png16", frame_stride=2))
    assert_success(comfy_server, entry)
    (saved,) = comfy_server.output_files(entry, "4")
    frames, times = decoded(saved)
    assert len(frames) == 5 and frames[0].shape == (64, 128, 3)  # frames 0, 2, 4, 6, 8 at their source times
    assert times == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8], abs=1e-3)
    assert all((f[..., 0] == f[..., 1]).mean() > 0.95 for f in frames)  # grey
    assert streams(saved)["audio"][0] == "aac"  # the source's audio came through
    (preview,) = comfy_server.output_files(entry, "3")  # the node previews its temp-folder video
    assert preview.parent.name == "dav2_video" and "temp" in preview.parts
    folders = sorted((comfy_server.output_dir / "video").glob("dav2_test_*_frames"))
    pngs = sorted(p.name for p in folders[-1].glob("*.png"))
    assert pngs == [f"{i:06d}.png" for i in (0, 2, 4, 6, 8)]
    assert np.asarray(Image.open(folders[-1] / pngs[0])).dtype == np.uint16


def test_example_workflow_runs_as_shipped(comfy_server, clip):
    api = example_video_graph(comfy_server, "video_depth_streaming", CLIP)
    entry = comfy_server.run(api)
    assert_success(comfy_server, entry)
    (saved,) = comfy_server.output_files(entry, node_id_of(api, "SaveVideo"))
    assert len(decoded(saved)[0]) == FRAMES


def test_cancel_mid_clip_leaves_no_partial_output(comfy_server, clip):
    temp = comfy_server.base_dir / "temp" / "dav2_video"
    before = set(temp.glob("*")) if temp.exists() else set()
    sequences = set((comfy_server.output_dir / "video").glob("*"))
    result = comfy_server.run_and_interrupt(
        graph(chunk_size=1, image_sequence="npy", filename_prefix="video/cancelled"), node_id="3", after=3
    )
    assert result["end"] == "execution_interrupted", result
    assert max(result["progress"]) <= result["at_interrupt"] + 1 < 2 * FRAMES  # stopped within one chunk
    after = set(temp.glob("*")) if temp.exists() else set()
    assert after == before  # no partial or hidden temporary video, no cache
    assert set((comfy_server.output_dir / "video").glob("*")) == sequences  # no (partial) sequence folder
    ok = comfy_server.run(graph(normalization="running"))
    assert_success(comfy_server, ok)


def test_range_past_the_end_is_reported(comfy_server, clip):
    entry = comfy_server.run(graph(start_frame=50))
    error = execution_error(entry)
    assert error is not None and error["node_type"] == "DAV2VideoDepth", entry["status"]
    assert "starts at frame 50, but the video has only 9 frames" in error["exception_message"]
    assert comfy_server.alive()
