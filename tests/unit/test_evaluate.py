"""Evaluation against measured depth (dav2_core.evaluate, dav2_core.ground_truth, ``dav2 eval``).

Constructed cases with known answers (an affine copy of the ground-truth disparity scores AbsRel 0 /
delta1 1; hand-computed examples), the readers on the real files in ../shared/depth_gt and on files
written here, and the bad inputs.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dav2_core import cli
from dav2_core.depth import DepthMap
from dav2_core.effects import save_depth
from dav2_core.evaluate import depth_metrics, evaluate_depth, format_evaluation
from dav2_core.ground_truth import from_array, from_depth_map, from_image, read_ground_truth, read_mask

MOTO_FB = 994.978 * 0.193001  # Middlebury motorcycle: focal length (px) x baseline (m)
MOTO_DOFFS = 31.086


def relative(values: torch.Tensor) -> DepthMap:
    return DepthMap(values.float()[None] if values.ndim == 2 else values.float(), "relative")


def metric(values: torch.Tensor) -> DepthMap:
    return DepthMap(values.float()[None] if values.ndim == 2 else values.float(), "metric")


def synthetic_gt(seed: int = 0) -> torch.Tensor:
    """Depth in metres [1,40,50], 1..9 m, with a block of invalid (0) pixels and a few NaN holes."""
    g = torch.Generator().manual_seed(seed)
    depth = 1.0 + 8.0 * torch.rand(1, 40, 50, generator=g, dtype=torch.float64)
    depth[0, :10, :10] = 0.0
    depth[0, 20, 20:25] = math.nan
    return depth


# ------------------------------------------------------------------------------------------- protocol
def test_affine_copy_of_gt_disparity_scores_perfectly_and_invalid_pixels_are_ignored():
    gt = from_array(synthetic_gt(), "depth")
    inv = gt.inverse_depth()[0]
    pred = (3.0 * inv + 0.7).nan_to_num(0.0)
    pred[~gt.valid()[0]] = torch.rand(int((~gt.valid()).sum()), dtype=torch.float64) * 100  # garbage where unmeasured
    result = evaluate_depth(relative(pred), gt)
    row = result.per_image[0]
    assert result.align == "scale_shift"
    assert row["abs_rel"] < 1e-6 and row["rmse"] < 1e-5 and row["delta1"] == 1.0
    assert row["n_valid"] == 40 * 50 - 100 - 5
    assert row["scale"] == pytest.approx(1 / 3, rel=1e-5) and row["shift"] == pytest.approx(-0.7 / 3, rel=1e-4)


def test_hand_computed_metric_example():
    # The 3-pixel example repeated 40 times (means unchanged) to clear MIN_VALID_PIXELS.
    gt = from_array(torch.tensor([[1.0, 2.0, 4.0]]).repeat(1, 40), "depth")
    row = evaluate_depth(metric(torch.tensor([[1.0, 2.0, 5.0]]).repeat(1, 40)), gt).per_image[0]
    assert row["abs_rel"] == pytest.approx(0.25 / 3)
    assert row["sq_rel"] == pytest.approx(0.25 / 3)
    assert row["rmse"] == pytest.approx(math.sqrt(1 / 3))
    assert row["rmse_log"] == pytest.approx(math.log(1.25) / math.sqrt(3))
    assert row["delta1"] == pytest.approx(2 / 3)  # 5/4 = 1.25 is not < 1.25
    assert row["delta2"] == 1.0 and row["n_valid"] == 120


def test_hand_computed_relative_fit():
    # gt inverse depth [1, 2, 4]; pred [0, 1, 2]: least squares gives scale 3/2, shift 5/6 (by hand).
    gt = from_array(torch.tensor([[1.0, 0.5, 0.25]]).repeat(1, 40), "depth")  # repeated: same fit and means
    pred = relative(torch.tensor([[0.0, 1.0, 2.0]]).repeat(1, 40))
    row = evaluate_depth(pred, gt, max_depth=10.0).per_image[0]
    assert row["scale"] == pytest.approx(1.5, rel=1e-6) and row["shift"] == pytest.approx(5 / 6, rel=1e-6)
    pred_depth = np.array([6 / 5, 3 / 7, 6 / 23])  # 1 / (1.5 * pred + 5/6)
    gt_depth = np.array([1.0, 0.5, 0.25])
    assert row["abs_rel"] == pytest.approx(np.mean(np.abs(pred_depth - gt_depth) / gt_depth), rel=1e-5)
    assert row["rmse"] == pytest.approx(np.sqrt(np.mean((pred_depth - gt_depth) ** 2)), rel=1e-5)
    assert row["delta1"] == 1.0  # ratios 1.2, 1.17, 1.04
    # Without max_depth the depth cap is the farthest ground truth (1 m): 1.2 m is read as 1 m.
    capped = evaluate_depth(pred, gt).per_image[0]
    pred_depth[0] = 1.0
    assert capped["abs_rel"] == pytest.approx(np.mean(np.abs(pred_depth - gt_depth) / gt_depth), rel=1e-5)


def test_depth_metrics_formulas():
    p, g = torch.tensor([2.0, 1.0]), torch.tensor([1.0, 1.0])
    m = depth_metrics(p, g)
    assert (m["abs_rel"], m["sq_rel"], m["rmse"]) == pytest.approx((0.5, 0.5, math.sqrt(0.5)))
    assert m["delta1"] == 0.5 and m["delta3"] == 0.5  # 2 > 1.25^3 = 1.953


def test_mask_and_depth_range_limit_the_pixels():
    gt = from_array(synthetic_gt(), "depth")
    pred = gt.depth()[0].nan_to_num(1.0).clone()
    pred[30:, :] *= 2.0  # wrong only in the bottom rows
    mask = torch.ones(40, 50, dtype=torch.bool)
    mask[30:] = False
    assert evaluate_depth(metric(pred), gt, mask=mask).per_image[0]["abs_rel"] < 1e-6
    assert evaluate_depth(metric(pred), gt, mask=mask.float()).per_image[0]["abs_rel"] < 1e-6  # a MASK 0..1
    full = evaluate_depth(metric(pred), gt).per_image[0]
    assert full["abs_rel"] > 0.1
    near = evaluate_depth(metric(pred), gt, max_depth=5.0).per_image[0]
    assert near["n_valid"] < full["n_valid"]


def test_metric_modes_scale_and_batches():
    gt = from_array(synthetic_gt().expand(2, -1, -1).clone(), "depth")
    pred = gt.depth().nan_to_num(1.0) * torch.tensor([2.0, 1.0])[:, None, None]
    plain = evaluate_depth(metric(pred), gt)
    assert plain.align == "none" and plain.per_image[0]["abs_rel"] == pytest.approx(1.0)
    assert plain.per_image[1]["abs_rel"] < 1e-6 and plain.mean["abs_rel"] == pytest.approx(0.5)
    assert plain.mean["n_valid"] == 2 * plain.per_image[0]["n_valid"]
    scaled = evaluate_depth(metric(pred), gt, align="scale")
    assert scaled.mean["abs_rel"] < 1e-6 and scaled.per_image[0]["scale"] == pytest.approx(0.5)
    one_gt = from_array(synthetic_gt(), "depth")  # one ground truth for the whole batch
    assert evaluate_depth(metric(pred), one_gt).mean["abs_rel"] == pytest.approx(0.5)
    text = format_evaluation(plain)
    assert "AbsRel" in text and "mean" in text and "RMSE in m" in text


def test_uncalibrated_disparity_is_relative_and_calibration_makes_it_metric():
    disp = torch.tensor([[10.0, 20.0, 0.0, 40.0]]).repeat(8, 8)  # 192 valid pixels: above MIN_VALID_PIXELS
    gt = from_array(disp, "disparity")
    assert not gt.metric and gt.units == "relative"
    assert torch.isnan(gt.depth()[0, 0, 2]) and gt.depth()[0, 0, 1] == pytest.approx(1 / 20)
    # A relative prediction = affine disparity scores perfectly without calibration.
    assert evaluate_depth(relative(2 * disp + 1), gt).per_image[0]["abs_rel"] < 1e-6
    with pytest.raises(ValueError, match="focal_baseline"):
        evaluate_depth(metric(torch.ones(8, 32)), gt)
    calibrated = from_array(disp, "disparity", focal_baseline=MOTO_FB, doffs=MOTO_DOFFS)
    expected_mm = 994.978 * 193.001 / (20.0 + 31.086)  # the dataset's own formula (shared/README.md)
    assert calibrated.metric and float(calibrated.depth()[0, 0, 1]) * 1000 == pytest.approx(expected_mm)


# ------------------------------------------------------------------------------------------- bad input
def test_all_invalid_ground_truth_is_a_clear_error_not_nan():
    gt = from_array(torch.zeros(1, 8, 8), "depth")
    with pytest.raises(ValueError, match="0 valid ground-truth pixels"):
        evaluate_depth(relative(torch.rand(8, 8)), gt)
    good = from_array(synthetic_gt(), "depth")
    with pytest.raises(ValueError, match="valid ground-truth pixels"):
        evaluate_depth(relative(torch.rand(40, 50)), good, mask=torch.zeros(40, 50))


def test_ground_truth_of_another_size():
    gt = from_array(synthetic_gt(), "depth")
    pred = gt.depth()[0].nan_to_num(1.0)
    small = torch.nn.functional.interpolate(pred[None, None], size=(20, 25), mode="nearest")[0, 0]
    with pytest.warns(UserWarning, match="nearest"):
        result = evaluate_depth(metric(small), gt)
    assert result.per_image[0]["abs_rel"] < 1e-6  # nearest resize keeps measured values exact
    with pytest.raises(ValueError, match="aspect ratio"):
        evaluate_depth(metric(torch.ones(40, 40)), gt)


def test_bad_modes_and_predictions():
    gt = from_array(synthetic_gt(), "depth")
    with pytest.raises(ValueError, match="needs metric predictions"):
        evaluate_depth(relative(torch.rand(40, 50)), gt, align="scale")
    with pytest.raises(ValueError, match="unknown alignment"):
        evaluate_depth(relative(torch.rand(40, 50)), gt, align="affine")
    nan = torch.rand(40, 50)
    nan[35, 35] = math.nan
    with pytest.raises(ValueError, match="NaN/inf"):
        evaluate_depth(relative(nan), gt)
    with pytest.raises(ValueError, match="below max_depth"):
        evaluate_depth(relative(torch.rand(40, 50)), gt, min_depth=5.0, max_depth=2.0)
    with pytest.raises(ValueError, match="depth or disparity|kind"):
        from_array(torch.ones(2, 2), "distance")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------- readers
def test_readers_on_the_shared_ground_truth(shared_dir: Path):
    nyu_file = shared_dir / "depth_gt/nyu/depth/sync_depth_00000.png"
    raw = np.array(Image.open(nyu_file))
    nyu = read_ground_truth(nyu_file)
    assert nyu.kind == "depth" and nyu.metric and nyu.values.shape == (1, 480, 640)
    valid = raw > 0
    torch.testing.assert_close(nyu.depth()[0][torch.from_numpy(valid)], torch.from_numpy(raw[valid] / 1000.0))
    assert bool(nyu.valid()[0].eq(torch.from_numpy(valid)).all())
    aloe = read_ground_truth(shared_dir / "depth_gt/middlebury_aloe/aloeGT.png")
    assert aloe.kind == "disparity" and not aloe.metric and aloe.values.shape == (1, 1110, 1282)
    moto_file = shared_dir / "depth_gt/middlebury_motorcycle/motorcycle_disp.npz"
    with pytest.raises(ValueError, match="whether it holds depth"):
        read_ground_truth(moto_file)  # a plain float array does not say what it holds
    moto = read_ground_truth(moto_file, "disparity", focal_baseline=MOTO_FB, doffs=MOTO_DOFFS)
    arr = np.load(moto_file)["arr_0"]
    assert int(moto.valid().sum()) == int(np.isfinite(arr).sum())  # inf = not measured


def write_pfm(path: Path, rows_top_first: np.ndarray) -> None:
    h, w = rows_top_first.shape
    with open(path, "wb") as f:
        f.write(b"Pf\n" + f"{w} {h}\n".encode() + b"-1.0\n")  # negative scale: little endian
        for row in rows_top_first[::-1]:  # PFM stores the bottom row first
            f.write(struct.pack(f"<{w}f", *row))


def test_readers_on_written_files(tmp_path: Path):
    disp = np.array([[1.0, 2.0, np.inf], [4.0, 5.0, 6.0]], dtype=np.float32)
    write_pfm(tmp_path / "d.pfm", disp)
    pfm = read_ground_truth(tmp_path / "d.pfm")
    assert pfm.kind == "disparity" and pfm.values[0, 0, 1] == 2.0 and pfm.values[0, 1, 0] == 4.0
    assert not bool(pfm.valid()[0, 0, 2])
    np.save(tmp_path / "depth.npy", disp)
    assert read_ground_truth(tmp_path / "depth.npy", "depth").values[0, 1, 2] == 6.0
    Image.fromarray(np.array([[0, 1500], [2500, 65535]], dtype=np.uint16)).save(tmp_path / "kitti.png")
    kitti = read_ground_truth(tmp_path / "kitti.png", scale=256.0)
    assert kitti.values[0, 0, 1] == pytest.approx(1500 / 256) and torch.isnan(kitti.values[0, 0, 0])
    # Save Depth outputs: metric files are ground truth (exact in npy, quantised in png16); relative are refused.
    metres = metric(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    for fmt in ("npy", "png16"):
        written = save_depth(metres, tmp_path / f"metric_{fmt}", fmt)
        gt = read_ground_truth(written[0])
        torch.testing.assert_close(gt.depth()[0], metres.values[0].double(), atol=1e-4, rtol=0)
    rel = save_depth(relative(torch.rand(2, 2)), tmp_path / "rel", "npy")
    with pytest.raises(ValueError, match="relative depth"):
        read_ground_truth(rel[0])
    with pytest.raises(ValueError, match="not found"):
        read_ground_truth(tmp_path / "missing.png")
    (tmp_path / "x.jpg").write_bytes(b"")
    with pytest.raises(ValueError, match="unsupported"):
        read_ground_truth(tmp_path / "x.jpg")
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(ValueError, match="single-channel"):
        read_ground_truth(tmp_path / "rgb.png")
    Image.fromarray(np.array([[0, 255], [9, 0]], np.uint8)).save(tmp_path / "mask.png")
    assert read_mask(tmp_path / "mask.png").tolist() == [[False, True], [True, False]]


def test_ground_truth_from_images_and_depth_maps():
    image = torch.tensor([[[0.0], [10 / 255]], [[20 / 255], [1.0]]]).expand(2, 2, 3)[None]
    gt = from_image(image)
    assert gt.kind == "disparity" and torch.isnan(gt.values[0, 0, 0]) and gt.values[0, 1, 1] == 255.0
    assert from_depth_map(metric(torch.ones(3, 3))).metric
    with pytest.raises(ValueError, match="relative depth"):
        from_depth_map(relative(torch.ones(3, 3)))


# ------------------------------------------------------------------------------------------- CLI
def test_cli_eval_of_prediction_files(tmp_path: Path, shared_dir: Path, capsys):
    gt_file = shared_dir / "depth_gt/nyu/depth/sync_depth_00000.png"
    gt = read_ground_truth(gt_file)
    np.save(tmp_path / "pred.npy", (2.0 * gt.inverse_depth()[0] + 0.1).nan_to_num(0.0).float().numpy())
    code = cli.main(
        ["eval", "--gt", str(gt_file), "--pred", str(tmp_path / "pred.npy"), "--json", str(tmp_path / "r.json")]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "loaded as relative depth" in err  # a plain .npy has no metadata: said, then read as relative
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["mean"]["abs_rel"] < 1e-5 and data["mean"]["delta1"] == 1.0 and data["align"] == ["scale_shift"]
    assert data["rows"][0]["n_valid"] == int(gt.valid().sum()) and "0.0000" in out
    assert cli.main(["eval", "--gt", str(gt_file), str(gt_file), "--pred", str(tmp_path / "pred.npy")]) == 2
    assert "give one of each per pair" in capsys.readouterr().err
    assert cli.main(["eval", "--gt", str(tmp_path / "nope.png"), "--pred", str(tmp_path / "pred.npy")]) == 2
    assert "not found" in capsys.readouterr().err


def test_cli_eval_predicts_images_with_the_model(tmp_path: Path, shared_dir: Path, capsys):
    from checkpoint_factory import write_checkpoint

    write_checkpoint(tmp_path / "depth_anything_v2_vits.pth", "vits", "official-pth", seed=0)
    nyu = shared_dir / "depth_gt/nyu"
    gt, image = str(nyu / "depth/sync_depth_00000.png"), str(nyu / "rgb/rgb_00000.jpg")
    predict = ["eval", "--gt", gt, "--image", image, "--models-dir", str(tmp_path), "--device", "cpu"]
    code = cli.main([*predict, "--input-size", "56", "--max-depth", "10", "--json", str(tmp_path / "r.json")])
    assert code == 0, capsys.readouterr().err
    row = json.loads((tmp_path / "r.json").read_text())["rows"][0]
    assert 0 < row["n_valid"] <= 480 * 640 and all(math.isfinite(row[k]) for k in ("abs_rel", "rmse", "delta1"))
    # the model options are the depth command's: --backend is honoured (here refused: no CUDA for TensorRT)
    code = cli.main([*predict, "--backend", "tensorrt"])
    assert code == 2 and "TensorRT requested without CUDA" in capsys.readouterr().err


def test_plain_exr_ground_truth_is_read_with_the_exr_backend(tmp_path: Path):
    from dav2_core.effects.export import exr_backend, save_depth

    if exr_backend() is None:
        pytest.skip("no EXR reader in this Python (OpenEXR, or OpenCV with its EXR codec)")
    metres = torch.linspace(0.5, 9.5, 12 * 16).reshape(1, 12, 16)
    written = save_depth(DepthMap(metres, kind="metric"), tmp_path / "gt", "exr")
    (exr,) = [p for p in written if p.suffix == ".exr"]
    Path(str(exr) + ".json").unlink()  # a plain EXR: no Save Depth metadata, so the kind must be given
    gt = read_ground_truth(exr, kind="depth")
    assert gt.kind == "depth"
    np.testing.assert_allclose(gt.values[0].numpy(), metres[0].numpy(), rtol=1e-6)
