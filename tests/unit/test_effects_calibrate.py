"""Metric calibration: known scale/shift recovered in disparity space; bad points; reference maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dav2_core.depth import DepthMap
from dav2_core.effects.calibrate import calibrate_to_metric

S, T = 0.2, 0.03  # 1/metres = S·rel + T


def _scene(h: int = 40, w: int = 60, box: bool = True):
    """True metres 1..10 (a tilted floor plus a box) and the relative map a model would give."""
    ys = torch.linspace(0, 1, h)[:, None].expand(h, w)
    xs = torch.linspace(0, 1, w)[None, :].expand(h, w)
    metres = 10.0 - 8.0 * ys + 1.0 * xs
    if box:
        metres[10:20, 20:35] = 1.5
    rel = (1.0 / metres - T) / S
    return metres[None], DepthMap(rel[None].clone(), kind="relative", model="vits")


def test_points_recover_known_scale_and_shift():
    metres, rel = _scene()
    pts = [
        (5, 2, float(metres[0, 2, 5])),
        (50, 38, float(metres[0, 38, 50])),
        (25, 15, 1.5),
        (59, 0, float(metres[0, 0, 59])),
    ]
    out, fit = calibrate_to_metric(rel, points=pts)
    assert out.kind == "metric" and out.units == "m" and out.model == "vits (calibrated)"
    assert fit["scale"][0] == pytest.approx(S, rel=0.01) and fit["shift"][0] == pytest.approx(T, rel=0.01)
    assert fit["residual_rmse_m"][0] < 1e-3 and fit["n_points"] == [4] and fit["source"] == "points"
    assert torch.allclose(out.values, metres, rtol=0.01)


def test_points_with_measurement_noise_report_a_residual():
    metres, rel = _scene()
    rng = np.random.default_rng(0)
    pts = []
    for _ in range(30):
        x, y = int(rng.integers(0, 60)), int(rng.integers(0, 40))
        pts.append((x, y, float(metres[0, y, x]) * (1 + 0.005 * rng.standard_normal())))
    out, fit = calibrate_to_metric(rel, points=pts)
    assert fit["scale"][0] == pytest.approx(S, rel=0.01) and fit["shift"][0] == pytest.approx(T, rel=0.05)
    assert 0.0 < fit["residual_rmse_m"][0] < 0.1
    assert float(((out.values - metres).abs() / metres).max()) < 0.02


def test_reference_map_with_invalid_pixels_and_batch():
    metres, rel = _scene()
    ref = metres * (1 + 0.01 * torch.randn(metres.shape, generator=torch.Generator().manual_seed(0)))
    ref[:, :5] = 0.0  # invalid (as in Kinect holes)
    ref[:, 5:8] = float("nan")
    two = DepthMap(torch.cat([rel.values, rel.values * 2.0 + 1.0]), kind="relative")
    out, fit = calibrate_to_metric(two, reference=DepthMap(ref, kind="metric"))
    assert out.values.shape == (2, 40, 60) and fit["source"] == "reference"
    assert fit["scale"][0] == pytest.approx(S, rel=0.01)
    assert fit["scale"][1] == pytest.approx(S / 2, rel=0.01)  # the second map is 2·rel + 1
    assert fit["n_points"] == [40 * 60 - 8 * 60] * 2
    assert torch.allclose(out.values[0], out.values[1], rtol=1e-3)
    assert torch.allclose(out.values[0], metres[0], rtol=0.02)


def test_reference_of_other_size_is_resized_with_warning():
    metres, rel = _scene(box=False)  # smooth, so resizing does not mix distances across an edge
    small = torch.nn.functional.interpolate(metres[None], size=(20, 30), mode="bilinear")[0]
    with pytest.warns(UserWarning, match="reference depth is 30x20"):
        _, fit = calibrate_to_metric(rel, reference=DepthMap(small, kind="metric"))
    assert fit["scale"][0] == pytest.approx(S, rel=0.02)


def test_non_positive_disparity_is_clamped_and_flagged():
    metres, rel = _scene()
    values = rel.values.clone()
    values[0, 0, 0] = -5.0  # a pixel the fit puts beyond infinity
    pts = [(5, 2, float(metres[0, 2, 5])), (50, 38, float(metres[0, 38, 50]))]
    with pytest.warns(UserWarning, match="clamped to 200 m"):
        out, fit = calibrate_to_metric(rel.with_values(values), points=pts, max_depth_m=200.0)
    assert fit["clamped_pixels"] == [1] and float(out.values[0, 0, 0]) == pytest.approx(200.0)
    assert torch.isfinite(out.values).all()


@pytest.mark.parametrize(
    "points, message",
    [
        ([(5, 5, 2.0)], "at least two reference points"),
        ([], "at least two reference points"),
        ([(5, 5, 2.0), (60, 5, 3.0)], r"point 1 \(60, 5\) is outside the 60x40 image"),
        ([(5, 5, 2.0), (5, -1, 3.0)], r"point 1 \(5, -1\) is outside"),
        ([(5, 5, 2.0), (6, 6, 0.0)], "distances must be > 0"),
        ([(5, 5, 2.0), (6, 6)], "must be"),
        ([(5, 5, 2.0), (5, 5, 3.0)], "same relative depth"),
        ([(5, 2, 2.0), (50, 38, 9.0)], "contradict the depth order"),
    ],
)
def test_bad_points(points, message):
    _, rel = _scene()
    with pytest.raises(ValueError, match=message):
        calibrate_to_metric(rel, points=points)


def test_bad_arguments():
    metres, rel = _scene()
    ref = DepthMap(metres, kind="metric")
    with pytest.raises(ValueError, match="exactly one"):
        calibrate_to_metric(rel)
    with pytest.raises(ValueError, match="exactly one"):
        calibrate_to_metric(rel, points=[(1, 1, 1.0), (2, 2, 2.0)], reference=ref)
    with pytest.raises(ValueError, match="already metric"):
        calibrate_to_metric(ref, reference=ref)
    with pytest.raises(ValueError, match="must be a metric"):
        calibrate_to_metric(rel, reference=rel)
    with pytest.raises(ValueError, match="fewer than two valid"):
        calibrate_to_metric(rel, reference=DepthMap(torch.zeros_like(metres), kind="metric"))
    with pytest.raises(ValueError, match="reference has 3 maps"):
        calibrate_to_metric(rel, reference=DepthMap(metres.repeat(3, 1, 1), kind="metric"))
