"""depth_stats vs numpy, invalid pixels, text/table formatting, and the analysis plot image."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import torch

from dav2_core.depth import DepthMap
from dav2_core.plots import as_image, plot_depth_analysis
from dav2_core.stats import STAT_KEYS, TABLE_COLUMNS, depth_stats, format_stats, stats_table_rows


def numpy_stats(a: np.ndarray) -> dict[str, float]:
    a = a.astype(np.float64)
    p = np.percentile(a, [1, 5, 50, 95, 99])
    return {
        "min": a.min(),
        "max": a.max(),
        "range": a.max() - a.min(),
        "mean": a.mean(),
        "median": p[2],
        "std": a.std(),
        "p1": p[0],
        "p5": p[1],
        "p95": p[3],
        "p99": p[4],
    }


def assert_record(rec: dict, a: np.ndarray) -> None:
    want = numpy_stats(a)
    for key in STAT_KEYS:
        assert rec[key] == pytest.approx(want[key], rel=1e-5, abs=1e-5), key
    assert rec["valid_pixels"] == a.size


def test_ramp_stats_match_numpy():
    # two different ramps: exact order statistics known, per-image and batch-wide entries differ
    a = torch.linspace(0.0, 10.0, 12 * 20).reshape(12, 20)
    b = torch.linspace(5.0, 6.0, 12 * 20).reshape(12, 20) ** 2
    d = DepthMap(torch.stack([a, b]), kind="metric", model="metric_hypersim_vits")
    s = depth_stats(d)
    assert (s["kind"], s["units"], s["model"], s["batch_size"], s["height"], s["width"]) == (
        "metric",
        "m",
        "metric_hypersim_vits",
        2,
        12,
        20,
    )
    assert_record(s["images"][0], a.numpy())
    assert_record(s["images"][1], b.numpy())
    assert_record(s["batch"], torch.stack([a, b]).numpy())
    assert s["images"][0]["min"] == 0.0 and s["images"][0]["max"] == 10.0
    assert s["images"][0]["median"] == pytest.approx(5.0)
    assert s["batch"]["total_pixels"] == 2 * 12 * 20
    json.dumps(s)  # plain Python data, ready for the UI


def test_random_stats_match_numpy_and_tensor_is_relative():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(1, 33, 47, generator=g) * 3 + 1
    s = depth_stats(x)
    assert s["kind"] == "relative" and s["units_label"] == "relative (inverse depth)"
    assert_record(s["images"][0], x[0].numpy())
    assert s["batch"] == s["images"][0]


def test_nan_inf_excluded_and_counted_invalid():
    x = torch.linspace(1.0, 2.0, 100).reshape(1, 10, 10).repeat(2, 1, 1)
    x[0, 0, :3] = float("nan")
    x[0, 1, 0] = float("inf")
    x[1, 5, 5] = float("-inf")
    s = depth_stats(x)
    r0, r1 = s["images"]
    assert r0["valid_pixels"] == 96 and r0["total_pixels"] == 100
    assert r1["valid_pixels"] == 99
    v0 = x[0][torch.isfinite(x[0])].numpy()
    assert_record(r0, v0)
    assert s["batch"]["valid_pixels"] == 195
    assert all(np.isfinite(r0[k]) for k in STAT_KEYS)


def test_all_invalid_image_gives_none_and_says_so():
    x = torch.rand(2, 4, 4)
    x[1] = float("nan")
    s = depth_stats(x)
    bad = s["images"][1]
    assert all(bad[k] is None for k in STAT_KEYS) and bad["valid_pixels"] == 0
    assert "no valid pixels" in bad["note"]
    assert s["images"][0]["min"] is not None and "note" not in s["images"][0]
    assert s["batch"]["valid_pixels"] == 16
    text = format_stats(s)
    assert "Image 2: no valid pixels" in text


def test_valid_mask():
    x = torch.arange(16.0).reshape(1, 4, 4)
    mask = torch.zeros(4, 4, dtype=torch.bool)
    mask[:2] = True  # values 0..7
    s = depth_stats(x, valid_mask=mask)
    rec = s["images"][0]
    assert rec["valid_pixels"] == 8 and rec["max"] == 7.0 and rec["mean"] == pytest.approx(3.5)
    with pytest.raises(ValueError, match="valid_mask"):
        depth_stats(x, valid_mask=torch.ones(3, 3, dtype=torch.bool))


def test_bad_input():
    with pytest.raises(ValueError, match=r"\[B,H,W\]"):
        depth_stats(torch.rand(4, 4))
    with pytest.raises(ValueError, match="empty"):
        depth_stats(torch.rand(0, 4, 4))


def test_format_stats_shows_units():
    met = DepthMap(torch.rand(2, 6, 6) * 5 + 1, kind="metric", model="metric_vkitti_vits")
    text = format_stats(depth_stats(met))
    assert "units: m" in text and "metric_vkitti_vits" in text
    assert "Batch:" in text and "Image 1:" in text and "Image 2:" in text
    s = depth_stats(met)
    assert f"{s['images'][0]['median']:.4g} m" in text
    rel_text = format_stats(depth_stats(torch.rand(1, 6, 6)))
    assert "relative (inverse depth)" in rel_text and "Batch:" not in rel_text
    many = format_stats(depth_stats(torch.rand(20, 3, 3)), max_images=4)
    assert "Image 4:" in many and "Image 5:" not in many and "16 more images" in many


def test_stats_table_rows():
    s = depth_stats(torch.rand(3, 5, 5))
    rows = stats_table_rows(s)
    assert [r["image"] for r in rows] == ["1", "2", "3", "batch"]
    assert all(tuple(r) == TABLE_COLUMNS for r in rows)
    assert rows[1]["max"] == s["images"][1]["max"] and rows[-1]["valid_pixels"] == 75
    json.dumps(rows)


# ---- analysis plot ---------------------------------------------------------------------------------


def scene(h: int = 90, w: int = 120) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    return 1.0 + 4.0 * yy + torch.sin(6 * xx)


def test_plot_has_promised_size_and_content():
    img = plot_depth_analysis(scene(), "m", "test scene")
    assert img.shape == (900, 1200, 3) and img.dtype == np.uint8
    assert img.std() > 10 and len(np.unique(img.reshape(-1, 3), axis=0)) > 50
    # each quadrant holds a panel (not blank)
    for quad in (img[:450, :600], img[:450, 600:], img[450:, :600], img[450:, 600:]):
        assert (quad < 200).any(axis=-1).mean() > 0.01
    small = plot_depth_analysis(scene().numpy(), "relative", size=(640, 480))
    assert small.shape == (480, 640, 3)


def test_plot_depends_on_depth():
    a = plot_depth_analysis(scene(), "m")
    b = plot_depth_analysis(scene().flip(0) * 2, "m")
    assert (a != b).any(axis=-1).mean() > 0.01


def test_plot_survives_nan_constant_and_all_invalid():
    x = scene()
    x[10:40, 20:70] = float("nan")
    x[0, 0] = float("inf")
    for depth in (x, torch.full((50, 60), 2.5), torch.full((50, 60), float("nan")), torch.rand(1, 1)):
        img = plot_depth_analysis(depth, "relative", size=(640, 480))
        assert img.shape == (480, 640, 3) and img.std() > 5


def test_plot_large_map_is_downsampled_fast():
    img = plot_depth_analysis(torch.rand(1000, 1500), "m")
    assert img.shape == (900, 1200, 3)


def test_plot_as_image_and_threads():
    results: list[torch.Tensor] = []
    threads = [
        threading.Thread(target=lambda: results.append(as_image(plot_depth_analysis(scene(), "m", size=(640, 480)))))
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 2
    t0 = results[0]
    assert t0.shape == (1, 480, 640, 3) and t0.dtype == torch.float32
    assert 0.0 <= t0.min().item() and t0.max().item() <= 1.0 and t0.std().item() > 0.02
    torch.testing.assert_close(results[0], results[1])  # same input, same picture, no shared state


def test_plot_bad_input():
    with pytest.raises(ValueError, match=r"\[H,W\]"):
        plot_depth_analysis(torch.rand(2, 4, 4), "m")
    with pytest.raises(ValueError, match=r"\[H,W\]"):
        plot_depth_analysis(np.zeros((0, 5)), "m")
    with pytest.raises(ValueError, match="at least"):
        plot_depth_analysis(torch.rand(4, 4), "m", size=(50, 50))
