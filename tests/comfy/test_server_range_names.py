"""The range-mode names of earlier versions on a real ComfyUI server (main.py --cpu): an API prompt holding them
(Estimate Depth ``normalization`` per_image, Video Depth ``normalization`` two_pass / per_frame, Colorize Depth
``range_mode`` auto) passes ComfyUI's validation and gives exactly the output of the same prompt with the current
names (``dav2_core.ranges.LEGACY_NAMES``); an unknown name is refused at queue time with a message naming the
choices.

Run on 0.33 too (Colorize's range_mode is a DynamicCombo there) by pointing COMFYUI_DIR at it with its own
interpreter (tools/run_tests.sh does both passes).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from comfy_harness import (
    TEST_CHECKPOINT,
    PromptError,
    assert_success,
    estimate_graph,
    read_video,
    video_depth_graph,
)
from dav2_core.ranges import LEGACY_NAMES
from video_clips import stamped_frame, write_clip

pytestmark = pytest.mark.server

PHOTO = "dav2_range_names.png"
CLIP = "dav2_range_names.mp4"


@pytest.fixture(scope="module")
def photo(comfy_server) -> str:
    """A 40x56 photo-like image (a gradient, a disc and a few bright outliers, so min-max and percentile ranges
    differ) in the server's input folder."""
    yy, xx = np.mgrid[0:40, 0:56].astype(np.float32)
    rgb = np.stack([xx / 55, yy / 39, 0.5 + 0.5 * np.sin(xx / 5)], -1)
    rgb[(xx - 20) ** 2 + (yy - 18) ** 2 < 90] = (0.9, 0.2, 0.1)
    rgb[::13, ::11] = 1.0
    Image.fromarray((rgb * 255).astype(np.uint8)).save(comfy_server.input_dir / PHOTO)
    return PHOTO


@pytest.fixture(scope="module")
def clip(comfy_server) -> Path:
    """6 frames whose content moves, so per-frame and clip ranges differ."""
    rng = np.random.default_rng(3)
    frames = [
        np.concatenate([stamped_frame(i), rng.integers(0, 255 - 30 * i, (16, 128, 3), dtype=np.uint8)])
        for i in range(6)
    ]
    return write_clip(comfy_server.input_dir / CLIP, frames, codec="libx264", pix_fmt="yuv420p")


def image_graph(photo: str, normalization: str, range_mode: str, tag: str) -> dict:
    """Load Image -> Load Depth Anything V2 -> Estimate Depth (``normalization``) -> Save Image (its depth image
    and its mask) and -> Colorize Depth (``range_mode``) -> Save Image."""
    graph, _, estimate = estimate_graph(photo, normalization=normalization, chunk_size=0)
    graph.add("SaveImage", images=estimate["depth_image"], filename_prefix=f"range_names/{tag}_depth")
    mask = graph.add("MaskToImage", mask=estimate["mask"])
    graph.add("SaveImage", images=mask["IMAGE"], filename_prefix=f"range_names/{tag}_mask")
    colour = graph.add("DAV2ColorizeDepth", depth=estimate["depth"], colormap="viridis", range_mode=range_mode)
    graph.add("SaveImage", images=colour["image"], filename_prefix=f"range_names/{tag}_colour")
    return graph.to_api()


def saved_images(server, entry: dict) -> dict[str, np.ndarray]:
    """The pixels each Save Image node of a finished prompt wrote, by its filename prefix's last part."""
    out = {}
    for node_id, output in entry["outputs"].items():
        for path in server.output_files(entry, node_id) if output.get("images") else []:
            if path.parent.name == "range_names":
                out[path.name.split("_", 1)[1].rsplit("_", 2)[0]] = np.asarray(Image.open(path))
    return out


def queue_errors(server, graph: dict) -> list[dict]:
    with pytest.raises(PromptError) as err:
        server.queue_prompt(graph)
    return [e for report in err.value.body["node_errors"].values() for e in report["errors"]]


def test_legacy_names_cover_every_renamed_choice():
    """The names this file's prompts use are the ones ranges.LEGACY_NAMES keeps (so the test covers them all)."""
    assert LEGACY_NAMES["estimate"] == {"per_image": "min_max"}
    assert LEGACY_NAMES["video"] == {"two_pass": "clip", "per_frame": "image"}
    assert LEGACY_NAMES["colorize"] == {"auto": "min_max"}


def test_old_image_names_run_like_the_new_ones(comfy_server, photo):
    """per_image + auto give the very pixels of min_max + min_max (depth image, mask, colours); percentile differs,
    so the comparison can tell the modes apart."""
    runs = {}
    for tag, normalization, range_mode in (
        ("old", "per_image", "auto"),
        ("new", "min_max", "min_max"),
        ("other", "percentile", "percentile"),
    ):
        entry = comfy_server.run(image_graph(photo, normalization, range_mode, tag))
        assert_success(comfy_server, entry)
        runs[tag] = saved_images(comfy_server, entry)
    assert set(runs["old"]) == {"depth", "mask", "colour"}, runs["old"].keys()
    for part in ("depth", "mask", "colour"):
        assert np.array_equal(runs["old"][part], runs["new"][part]), part
    assert not np.array_equal(runs["new"]["colour"], runs["other"]["colour"])
    assert not np.array_equal(runs["new"]["depth"], runs["other"]["depth"])


@pytest.mark.parametrize(("old", "new"), [("two_pass", "clip"), ("per_frame", "image")])
def test_old_video_names_run_like_the_new_ones(comfy_server, clip, old, new):
    """Video Depth's two_pass / per_frame give the very frames of clip / image (and the two differ)."""
    frames = {}
    for name in (old, new):
        graph = video_depth_graph(CLIP, TEST_CHECKPOINT, f"video/range_names_{name}", normalization=name)
        entry = comfy_server.run(graph)
        assert_success(comfy_server, entry)
        (saved,) = comfy_server.output_files(entry, "4")
        frames[name] = read_video(saved)
    assert frames[old].shape[0] == 6 and np.array_equal(frames[old], frames[new])


def test_clip_and_image_ranges_differ(comfy_server, clip):
    """The video comparison above can fail: the clip range and each frame's own range give different frames."""
    out = []
    for name in ("clip", "image"):
        entry = comfy_server.run(
            video_depth_graph(CLIP, TEST_CHECKPOINT, f"video/range_names_{name}", normalization=name)
        )
        assert_success(comfy_server, entry)
        out.append(read_video(comfy_server.output_files(entry, "4")[0]))
    assert not np.array_equal(out[0], out[1])


@pytest.mark.parametrize(
    ("node", "input_name", "choices"),
    [
        ("estimate", "normalization", "min_max, percentile, batch, raw"),
        ("colorize", "range_mode", "min_max, percentile, manual"),
        ("video", "normalization", "clip, running, image"),
    ],
)
def test_unknown_name_is_refused_naming_the_choices(comfy_server, photo, clip, node, input_name, choices):
    if node == "video":
        graph = video_depth_graph(CLIP, TEST_CHECKPOINT, "video/range_names_bad", normalization="sideways")
    else:
        graph = image_graph(photo, "min_max", "min_max", "bad")
        class_type = {"estimate": "DAV2EstimateDepth", "colorize": "DAV2ColorizeDepth"}[node]
        (target,) = [n for n in graph.values() if n["class_type"] == class_type]
        target["inputs"][input_name] = "sideways"
    errors = queue_errors(comfy_server, graph)
    text = " ".join(f"{e['message']} {e['details']}" for e in errors)
    assert choices in text, errors
    # ComfyUI 0.33 drops a DynamicCombo's unknown value before the node sees it: then the node says so
    dynamic = (
        comfy_server.object_info("DAV2ColorizeDepth")["input"]["required"]["range_mode"][0] == "COMFY_DYNAMICCOMBO_V3"
    )
    assert ("range_mode is missing or unknown" if node == "colorize" and dynamic else "'sideways'") in text, errors
    assert comfy_server.alive()
