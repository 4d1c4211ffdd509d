"""Estimate Depth's tiled mode and the Evaluate Depth node, in-process with ComfyUI's real modules."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from comfy_harness import TEST_CHECKPOINT
from dav2_core.depth import DepthMap
from dav2_core.pipeline import ESTIMATE_RESOLUTIONS
from dav2_core.tiling import plan_tiles


@pytest.fixture(scope="module")
def model(comfy_inprocess):
    return comfy_inprocess.node("Load Depth Anything V2").execute(TEST_CHECKPOINT, "fp32", "auto", "auto").args[0]


def estimate(comfy, model, image, **overrides):
    args = dict(
        input_size=28, resolution="keep_aspect", max_side=1932, normalization="min_max", invert=False, chunk_size=0
    )
    args.update(overrides)
    return comfy.node("Estimate Depth").execute(model, image, **args)


# ------------------------------------------------------------------------------------------- tiled mode
def test_estimate_offers_tiled_mode_with_optional_tile_inputs(comfy_inprocess):
    schema = comfy_inprocess.node("Estimate Depth").GET_SCHEMA()
    inputs = {i.id: i for i in schema.inputs}
    assert inputs["resolution"].options == list(ESTIMATE_RESOLUTIONS) and "tiled" in inputs["resolution"].options
    for name, default in (("tile_size", 518), ("tile_overlap", 128), ("max_tiles", 16)):
        assert inputs[name].optional and inputs[name].default == default, name  # old workflows load unchanged


def test_estimate_tiled_runs_and_bad_tiles_are_refused_at_queue_time(comfy_inprocess, model):
    import comfy.utils

    node = comfy_inprocess.node("Estimate Depth")
    assert "smaller than tile_size" in node.validate_inputs("min_max", False, tile_size=56, tile_overlap=56)
    assert node.validate_inputs("min_max", False, tile_size=56, tile_overlap=14, max_tiles=4) is True
    assert node.validate_inputs("min_max", False) is True  # a workflow saved before the tile inputs existed
    image = torch.rand(1, 60, 84, 3, generator=torch.Generator().manual_seed(0))
    calls = []
    comfy.utils.set_progress_bar_global_hook(lambda value, total, preview, node_id=None: calls.append((value, total)))
    try:
        out = estimate(comfy_inprocess, model, image, resolution="tiled", tile_size=42, tile_overlap=14, max_tiles=4)
    finally:
        comfy.utils.set_progress_bar_global_hook(None)
    grid = plan_tiles(60, 84, 42, 14, 4, (28, 39))
    assert grid is not None and calls[-1] == (1 + grid.count, 1 + grid.count)
    assert out.args[0].shape == (1, 60, 84, 3) and out.args[1].values.shape == (1, 60, 84)
    plain = estimate(comfy_inprocess, model, image).args[1].values
    assert not torch.equal(out.args[1].values, plain)


# ------------------------------------------------------------------------------------------- Evaluate Depth
def evaluate(comfy, depth, gt_file="", **overrides):
    args = dict(gt_kind="auto", gt_scale=0.0, align="auto", min_depth=0.0, max_depth=0.0)
    args.update(overrides)
    return comfy.node("Evaluate Depth").execute(depth, gt_file, **args)


@pytest.fixture(scope="module")
def nyu_like(comfy_inprocess):
    """A 16-bit depth PNG in millimetres (0 = invalid) in ComfyUI's input folder, and its metres."""
    g = np.random.default_rng(0)
    mm = g.integers(500, 9000, (24, 32)).astype(np.uint16)
    mm[:4, :4] = 0
    Image.fromarray(mm).save(comfy_inprocess.base_dir / "input" / "gt_depth.png")
    metres = torch.from_numpy(mm.astype(np.float64) / 1000.0)
    return metres, torch.from_numpy(mm > 0)


def test_evaluate_depth_scores_an_affine_disparity_perfectly(comfy_inprocess, nyu_like):
    metres, valid = nyu_like
    pred = torch.where(valid, 5.0 / metres + 0.3, torch.zeros_like(metres))
    pred[~valid] = 123.0  # anything where nothing was measured
    out = evaluate(comfy_inprocess, DepthMap(pred.float()[None], "relative"), "gt_depth.png")
    report, metrics_json, abs_rel, delta1 = out.args
    assert abs_rel < 1e-5 and delta1 == 1.0
    data = json.loads(metrics_json)
    assert data["align"] == "scale_shift" and data["per_image"][0]["n_valid"] == int(valid.sum())
    assert "AbsRel" in report and out.ui["text"] == out.ui["dav2_report"] == [report]  # shown on the node


def test_evaluate_depth_other_ground_truth_inputs(comfy_inprocess, nyu_like):
    metres, valid = nyu_like
    truth = DepthMap(torch.where(valid, metres, torch.zeros_like(metres)).float()[None], "metric")
    pred = DepthMap((2.0 * metres).float()[None], "metric")
    out = evaluate(comfy_inprocess, pred, ground_truth=truth)
    assert out.args[2] == pytest.approx(1.0)  # twice as far: AbsRel 1, compared as is
    assert evaluate(comfy_inprocess, pred, ground_truth=truth, align="scale").args[2] < 1e-5
    disparity = torch.zeros(1, 24, 32, 3)
    disparity[0, :, :16] = 40 / 255
    disparity[0, :, 16:] = 80 / 255  # an 8-bit disparity map through Load Image; near = bright
    depth_image = disparity.clone()  # a grey depth IMAGE as the prediction: relative, brighter = nearer
    out = evaluate(comfy_inprocess, depth_image, ground_truth=disparity)
    assert out.args[2] < 1e-5 and out.args[3] == 1.0
    mask = torch.zeros(1, 24, 32)
    with pytest.raises(ValueError, match="valid ground-truth pixels"):
        evaluate(comfy_inprocess, depth_image, ground_truth=disparity, mask=mask)


def test_evaluate_depth_bad_inputs(comfy_inprocess, nyu_like):
    pred = DepthMap(torch.rand(1, 24, 32), "relative")
    with pytest.raises(ValueError, match="exactly once"):
        evaluate(comfy_inprocess, pred)
    with pytest.raises(ValueError, match="exactly once"):
        evaluate(comfy_inprocess, pred, "gt_depth.png", ground_truth=torch.rand(1, 24, 32, 3))
    with pytest.raises(ValueError, match="not found"):
        evaluate(comfy_inprocess, pred, "missing.png")
    with pytest.raises(ValueError, match="relative depth"):
        evaluate(comfy_inprocess, pred, ground_truth=pred)
    with pytest.raises(ValueError, match="DEPTH"):
        evaluate(comfy_inprocess, torch.rand(1, 24, 32), "gt_depth.png")  # a MASK wired as the prediction
