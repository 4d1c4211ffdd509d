"""Estimate Depth's and Video Depth's ``tta`` input in-process: schema (old workflows keep their values), the
old ``flip_tta`` widget, multi-scale through the node, and the queue-time errors."""

from __future__ import annotations

import sys

import pytest
import torch

from comfy_harness import TEST_CHECKPOINT
from dav2_core.inference import predict_depth
from dav2_core.tta import TTA_MODES

SIZE = 42  # the smallest keep_aspect input_size multi-scale TTA accepts


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny tensors: one thread is fastest


@pytest.fixture(scope="module")
def model(comfy_inprocess):
    loader = comfy_inprocess.node("Load Depth Anything V2")
    return loader.execute(TEST_CHECKPOINT, "fp32", "auto", "auto").args[0]


def run(comfy, model, image, **overrides):
    args = dict(
        input_size=SIZE, resolution="keep_aspect", max_side=1932, normalization="raw", invert=False, chunk_size=0
    )
    args.update(overrides)
    return comfy.node("Estimate Depth").execute(model, image, **args).args[1].values


@pytest.mark.parametrize("name", ["Estimate Depth", "Video Depth"])
def test_tta_is_an_optional_combo_after_every_older_input(comfy_inprocess, name):
    inputs = comfy_inprocess.node(name).GET_SCHEMA().inputs
    ids = [i.id for i in inputs]
    assert ids[-1] == "tta" and "flip_tta" in ids  # appended: positional widget values of old workflows still fit
    tta = inputs[-1]
    assert tta.optional and tta.default == "none" and list(tta.options) == list(TTA_MODES)
    assert "6.7x compute" in tta.tooltip and "3.3x compute" in tta.tooltip


def test_old_flip_tta_workflow_gives_the_flip_result(comfy_inprocess, model):
    image = torch.rand(1, 30, 40, 3, generator=torch.Generator().manual_seed(0))
    old = run(comfy_inprocess, model, image, flip_tta=True)  # a workflow saved before tta existed
    new = run(comfy_inprocess, model, image, tta="flip")
    direct = predict_depth(model.patcher.model, image, input_size=SIZE, flip_tta=True)
    assert torch.equal(old, new) and torch.equal(old, direct)


def test_multi_scale_through_the_node_is_the_engine_result(comfy_inprocess, model):
    image = torch.rand(1, 30, 40, 3, generator=torch.Generator().manual_seed(1))
    got = run(comfy_inprocess, model, image, tta="multi_scale")
    direct = predict_depth(model.patcher.model, image, input_size=SIZE, multi_scale=True)
    torch.testing.assert_close(got, direct, atol=1e-5, rtol=1e-5)
    both = run(comfy_inprocess, model, image, tta="multi_scale", flip_tta=True)
    direct = predict_depth(model.patcher.model, image, input_size=SIZE, multi_scale=True, flip_tta=True)
    torch.testing.assert_close(both, direct, atol=1e-5, rtol=1e-5)


def test_impossible_tta_is_refused_when_queued(comfy_inprocess):
    node = comfy_inprocess.node("Estimate Depth")
    ok = node.validate_inputs("min_max", False, tta="multi_scale", resolution="keep_aspect", input_size=518)
    assert ok is True
    small = node.validate_inputs("min_max", False, tta="multi_scale", resolution="keep_aspect", input_size=28)
    assert isinstance(small, str) and "input_size >= 42" in small
    tiled = node.validate_inputs("min_max", False, tta="multi_scale", resolution="tiled", input_size=518)
    assert isinstance(tiled, str) and "tiled" in tiled
    assert node.validate_inputs("min_max", False, tta="flip", resolution="tiled", input_size=518) is True
    assert node.validate_inputs("min_max", False) is True  # an old workflow without tta


def test_video_depth_options_take_tta(comfy_inprocess):
    video_options = sys.modules[comfy_inprocess.node("Video Depth").__module__].video_options  # as ComfyUI loaded it

    assert video_options(tta="multi_scale").estimate.tta == "multi_scale"
    assert video_options(flip_tta=True).estimate.tta == "flip"
    assert video_options(flip_tta=True, tta="multi_scale").estimate.tta == "multi_scale_flip"
    with pytest.raises(ValueError, match="tiled"):
        video_options(tta="multi_scale", resolution="tiled")
