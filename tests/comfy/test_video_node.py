"""Video Depth in-process with ComfyUI's real modules: its widget defaults are the video core's defaults (so the
benchmark, which calls the core with VideoOptions(), measures what the node does), and bad settings are refused."""

from __future__ import annotations

import inspect
import sys

import pytest

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
        normalization="per_frame",
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
    assert options.range_mode == "per_frame" and options.colormap == "turbo" and options.sequence == ("npy",)
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
    with pytest.raises(ValueError, match="unknown video normalisation 'clip'"):
        module.video_options(normalization="clip")
    with pytest.raises(ValueError, match="unknown range_statistic"):
        module.video_options(range_statistic="median")
    node = comfy_inprocess.node("Video Depth")
    assert node.validate_inputs(image_sequence="png16") is True
    monkeypatch.setattr(sys.modules["dav2_core.video.sequence"], "exr_backend", lambda: None)
    assert "OpenEXR" in node.validate_inputs(image_sequence="exr")
