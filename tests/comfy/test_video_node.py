"""Video Depth in-process with ComfyUI's real modules: its widget defaults are the video core's defaults (so the
benchmark, which calls the core with VideoOptions(), measures what the node does), and bad settings are refused."""

from __future__ import annotations

import inspect
import sys

import pytest
import torch

from dav2_core.video import VideoOptions


def node_module(comfy_inprocess):
    return sys.modules[comfy_inprocess.node("Video Depth").__module__]


def test_widget_defaults_are_the_core_defaults(comfy_inprocess):
    module = node_module(comfy_inprocess)
    schema = comfy_inprocess.node("Video Depth").GET_SCHEMA()
    defaults = {p.name: p.default for p in inspect.signature(module.video_options).parameters.values()}
    widgets = {i.id: i.default for i in schema.inputs if i.id not in ("model", "video", "filename_prefix")}
    assert widgets == defaults  # every widget maps to one video_options parameter with the same default
    assert module.video_options() == VideoOptions()


def test_node_options_map_onto_the_core(comfy_inprocess):
    options = node_module(comfy_inprocess).video_options(
        input_size=140,
        normalization="image",
        range_statistic="percentile",
        invert=True,
        colormap="turbo",
        start_frame=3,
        frame_count=7,
        frame_stride=2,
        chunk_size=5,
        image_sequence="npy",
        temporal_consistency=False,
    )
    assert options.range_mode == "image" and options.colormap == "turbo" and options.sequence == ("npy",)
    assert (options.frames.start, options.frames.count, options.frames.stride) == (3, 7, 2)
    est = options.estimate
    assert (est.input_size, est.normalization, est.invert, est.chunk_size, est.temporal_consistency) == (
        140,
        "percentile",
        True,
        5,
        False,
    )


def test_bad_settings_are_refused(comfy_inprocess, monkeypatch):
    module = node_module(comfy_inprocess)
    with pytest.raises(ValueError, match="unknown video normalisation 'min_max'; choose one of clip, running, image"):
        module.video_options(normalization="min_max")
    with pytest.raises(ValueError, match="unknown range_statistic"):
        module.video_options(range_statistic="median")
    node = comfy_inprocess.node("Video Depth")
    assert node.validate_inputs(image_sequence="png16") is True
    assert node.validate_inputs(normalization="two_pass") is True  # an older name: the same choice as clip
    assert "choose one of clip, running, image" in node.validate_inputs(normalization="sideways")
    monkeypatch.setattr(sys.modules["dav2_core.video.sequence"], "exr_backend", lambda: None)
    assert "OpenEXR" in node.validate_inputs(image_sequence="exr")


def test_the_model_is_loaded_with_room_for_a_chunk_like_estimate_depth(comfy_inprocess, random_vits, monkeypatch):
    """Video Depth asks ComfyUI for the weights plus a chunk's activations (EstimateOptions.memory_required),
    as Estimate Depth does, so other models are offloaded to make room before the first chunk runs."""
    module = node_module(comfy_inprocess)
    types = sys.modules[module.DepthModel.__module__]
    asked = []

    def load(patcher, memory_required=0):
        asked.append(memory_required)
        raise RuntimeError("stop before decoding")

    class Video:
        def get_stream_source(self):
            return "clip.mp4"

        def get_dimensions(self):
            return 640, 480

    class Patcher:
        model = random_vits
        load_device = torch.device("cpu")

    monkeypatch.setattr(module.model_patcher, "load", load)
    model = types.DepthModel(
        patcher=Patcher(), name="vits", encoder="vits", kind="relative", max_depth=None, dtype="fp32"
    )
    with pytest.raises(RuntimeError, match="stop before decoding"):
        comfy_inprocess.node("Video Depth").execute(model, Video(), "dav2_depth", frame_count=10)
    expected = VideoOptions().estimate.memory_required(random_vits, 10, 480, 640)
    assert asked == [expected] and expected > 0
