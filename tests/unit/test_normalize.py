"""normalize_depth / range_of / masked_quantile: near = 1, modes, invert, NaN/Inf, zero range, >16M pixels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dav2_core.depth import DepthMap, nearness_range
from dav2_core.normalize import (
    NORMALIZE_MODE_HELP,
    NORMALIZE_MODES,
    masked_quantile,
    nearness,
    normalize_depth,
    range_of,
)


def ramp(b: int = 1, h: int = 8, w: int = 12, lo: float = 0.0, hi: float = 1.0) -> torch.Tensor:
    """[B,H,W] horizontal ramp lo..hi (left → right)."""
    return torch.linspace(lo, hi, w).expand(b, h, w).clone()


def test_modes_listed_once_with_help():
    assert NORMALIZE_MODES == ("min_max", "percentile", "batch", "raw")
    assert all(NORMALIZE_MODE_HELP[m] for m in NORMALIZE_MODES)


def test_one_nearness_definition():
    """DepthMap.nearness is the definition (float32; metric: -metres); the helpers agree with it."""
    values = (torch.rand(2, 3, 4) + 0.5).half()
    for kind, sign in (("relative", 1.0), ("metric", -1.0)):
        depth = DepthMap(values, kind)
        assert depth.nearness().dtype == torch.float32
        assert torch.equal(depth.nearness(), sign * values.float())
        assert torch.equal(nearness(depth), depth.nearness())
        lo, hi = torch.tensor([1.0, 2.0]), torch.tensor([3.0, 5.0])
        near_lo, near_hi = nearness_range(lo, hi, depth.is_metric)
        assert torch.equal(near_lo, sign * (hi if depth.is_metric else lo))
        assert all(map(torch.equal, nearness_range(near_lo, near_hi, depth.is_metric), (lo, hi)))
    assert torch.equal(nearness(values), values.float())  # a plain tensor is relative depth


def test_min_max_exact():
    x = ramp(lo=3.0, hi=7.0)
    out = normalize_depth(x, "min_max")
    assert out.dtype == torch.float32 and out.shape == x.shape
    expected = (x - 3.0) / 4.0
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)
    assert out.min().item() == 0.0 and out.max().item() == 1.0


def test_near_is_white_relative_and_metric():
    # relative: larger disparity = nearer → right side nearest
    rel = DepthMap(ramp(lo=0.5, hi=9.0), kind="relative")
    # metric: smaller metres = nearer → left side nearest
    met = DepthMap(ramp(lo=1.0, hi=20.0), kind="metric")
    for mode in ("min_max", "percentile", "batch"):
        r = normalize_depth(rel, mode)
        m = normalize_depth(met, mode)
        assert r[0, 0, -1].item() == pytest.approx(1.0) and r[0, 0, 0].item() == pytest.approx(0.0), mode
        assert m[0, 0, 0].item() == pytest.approx(1.0) and m[0, 0, -1].item() == pytest.approx(0.0), mode
    # metric nearness is linear in metres: 1 m → 1, 20 m → 0
    m = normalize_depth(met, "min_max")
    torch.testing.assert_close(m, (20.0 - met.values) / 19.0, atol=1e-6, rtol=0)


def test_invert_flips():
    x = torch.rand(2, 9, 7)
    a = normalize_depth(x, "min_max")
    b = normalize_depth(x, "min_max", invert=True)
    torch.testing.assert_close(a + b, torch.ones_like(a), atol=1e-6, rtol=0)


def test_batch_mode_keeps_offset_min_max_removes_it():
    base = ramp(h=4, w=10, lo=0.0, hi=1.0)[0]
    x = torch.stack([base, base + 0.5])  # frame 2 = frame 1 + constant offset
    per = normalize_depth(x, "min_max")
    torch.testing.assert_close(per[0], per[1])  # offset removed
    bat = normalize_depth(x, "batch")
    # one range 0..1.5 for the batch: the offset survives as 0.5/1.5
    torch.testing.assert_close(bat[1] - bat[0], torch.full_like(base, 0.5 / 1.5), atol=1e-6, rtol=0)
    assert bat.min().item() == 0.0 and bat.max().item() == 1.0
    lo, hi = range_of(x, "batch")
    assert lo.tolist() == [0.0, 0.0] and hi.tolist() == [1.5, 1.5]


def test_percentile_mode_matches_numpy_and_clips():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 30, 40, generator=g)
    x[0, 0, 0] = 1e6  # an outlier that min_max would let dominate
    lo, hi = range_of(x, "percentile", 1.0, 99.0)
    for i in range(2):
        p1, p99 = np.percentile(x[i].numpy(), [1, 99])
        assert lo[i].item() == pytest.approx(p1, rel=1e-5, abs=1e-6)
        assert hi[i].item() == pytest.approx(p99, rel=1e-5, abs=1e-6)
    out = normalize_depth(x, "percentile")
    assert out.min().item() == 0.0 and out.max().item() == 1.0
    assert out[0, 0, 0].item() == 1.0  # clipped outlier
    # percentiles spread the bulk of the image, min_max squashes it near 0
    assert out[0].median().item() > 0.3 > normalize_depth(x, "min_max")[0].median().item()


def test_zero_range_gives_zeros_not_nan():
    x = torch.full((2, 5, 6), 3.25)
    for mode in ("min_max", "percentile", "batch"):
        for inv in (False, True):
            out = normalize_depth(x, mode, invert=inv)
            assert torch.isfinite(out).all() and (out == 0).all(), (mode, inv)


def test_nan_inf_ignored_and_mapped_to_zero():
    x = ramp(b=2, lo=2.0, hi=4.0)
    x[0, 1, 1] = float("nan")
    x[0, 2, 2] = float("inf")
    x[1, 3, 3] = float("-inf")
    x[1, 0, 0] = float("nan")
    for mode in ("min_max", "percentile", "batch"):
        out = normalize_depth(x, mode)
        assert torch.isfinite(out).all(), mode
        assert out[0, 1, 1] == 0 and out[0, 2, 2] == 0 and out[1, 3, 3] == 0 and out[1, 0, 0] == 0
        lo, hi = range_of(x, mode)
        assert torch.isfinite(lo).all() and torch.isfinite(hi).all()
    lo, hi = range_of(x, "min_max")
    assert lo.tolist() == [2.0, 2.0] and hi.tolist() == [4.0, 4.0]
    # an image with no finite pixel: zeros, and the other image unaffected
    y = x.clone()
    y[1] = float("nan")
    out = normalize_depth(y, "min_max")
    assert (out[1] == 0).all() and out[0].max().item() == 1.0


def test_raw_is_unchanged_and_refuses_invert():
    met = DepthMap(ramp(lo=1.0, hi=20.0), kind="metric")
    raw = normalize_depth(met, "raw")
    assert raw.dtype == torch.float32 and torch.equal(raw, met.values)
    assert raw.data_ptr() != met.values.data_ptr()
    with pytest.raises(ValueError, match="invert"):
        normalize_depth(met, "raw", invert=True)
    with pytest.raises(ValueError, match="raw"):
        range_of(met, "raw")


def test_half_precision_input_is_upcast():
    x = ramp(lo=0.0, hi=2.0).half()
    out = normalize_depth(x, "min_max")
    assert out.dtype == torch.float32 and out.max().item() == 1.0


@pytest.mark.parametrize(
    "bad, match",
    [
        (torch.rand(4, 4), r"\[B,H,W\]"),
        (torch.rand(1, 4, 4, 3), r"\[B,H,W\]"),
        (torch.rand(0, 4, 4), "empty"),
        (np.zeros((1, 4, 4)), "DepthMap"),
    ],
)
def test_bad_depth_input(bad, match):
    with pytest.raises(ValueError, match=match):
        normalize_depth(bad)


def test_bad_mode_and_percentiles():
    x = torch.rand(1, 4, 4)
    with pytest.raises(ValueError, match="min_max"):
        normalize_depth(x, "minmax")
    with pytest.raises(ValueError, match="low < high"):
        normalize_depth(x, "percentile", 99.0, 1.0)
    with pytest.raises(ValueError, match="low < high"):
        normalize_depth(x, "percentile", -1.0, 50.0)


def test_masked_quantile_matches_numpy_with_uneven_masks():
    g = torch.Generator().manual_seed(2)
    values = torch.randn(4, 257, generator=g)
    values[2, :40] = 0.5  # repeated values around the interpolation points
    valid = torch.rand(4, 257, generator=g) > 0.3
    valid[3] = False  # a row with nothing valid
    valid[1, 5:] = False  # a row with 5 entries (interpolation between few order statistics)
    qs = (0.0, 0.01, 0.05, 0.25, 0.5, 0.95, 0.99, 1.0)
    got = masked_quantile(values, valid, qs)
    for r in range(3):
        want = np.percentile(values[r][valid[r]].numpy().astype(np.float64), [100 * q for q in qs])
        np.testing.assert_allclose(got[r].numpy(), want, rtol=1e-6, atol=1e-6)
    assert torch.isnan(got[3]).all()


def test_percentile_beyond_torch_quantile_limit():
    # 4200x4200 = 17.64M pixels: more than torch.quantile accepts in older torch releases (16M); exact answer known
    h = w = 4200
    n = h * w
    perm = (torch.arange(n, dtype=torch.int64) * 7919) % n  # a permutation of 0..n-1 (gcd(7919, n) = 1)
    x = perm.float().reshape(1, h, w)
    lo, hi = range_of(x, "percentile", 1.0, 99.0)
    # values are 0..n-1, so the linear-interpolation percentile q is exactly q*(n-1)
    assert lo.item() == pytest.approx(0.01 * (n - 1), rel=1e-6)
    assert hi.item() == pytest.approx(0.99 * (n - 1), rel=1e-6)


def test_one_normalisation_vocabulary_for_every_front_end():
    """dav2_core.ranges defines every front end's range names as a statistic over a scope of the one vocabulary,
    named from it; the engine's lists are those tables."""
    from dav2_core import ranges
    from dav2_core.cli.args import NORMALIZE_CHOICES
    from dav2_core.colormaps import RANGE_MODE_HELP
    from dav2_core.pipeline import STREAM_RANGE_HELP
    from dav2_core.video import VIDEO_RANGE_HELP

    for table in ranges.FRONT_ENDS.values():
        for name, entry in table.items():
            assert entry.help and (entry.statistic or entry.scope)
            assert entry.statistic in (None, *ranges.STATISTIC_HELP) and entry.scope in (None, *ranges.SCOPE_HELP)
            assert name in (entry.statistic, entry.scope), name  # every name is the vocabulary's
    assert NORMALIZE_MODE_HELP == ranges.help_of(ranges.ESTIMATE_MODES)
    assert VIDEO_RANGE_HELP == ranges.help_of(ranges.VIDEO_SCOPES) and list(VIDEO_RANGE_HELP)[0] == "clip"
    assert STREAM_RANGE_HELP == ranges.help_of(ranges.STREAM_SCOPES)
    assert RANGE_MODE_HELP == ranges.help_of(ranges.COLORIZE_MODES)
    assert NORMALIZE_CHOICES == ("min_max", "percentile") and set(NORMALIZE_CHOICES) <= set(ranges.ESTIMATE_MODES)
    assert ranges.split("batch", "estimate") == ("min_max", "batch")
    assert ranges.split("clip", "video") == (None, "clip")
    assert ranges.split("min_max", "colorize") == ("min_max", "image")
    with pytest.raises(ValueError, match="choose one of min_max, percentile, batch, raw"):
        ranges.split("clip", "estimate")


def test_older_names_are_one_table_of_the_same_choices():
    """ranges.LEGACY_NAMES maps each front end's older names to current ones (never to another older one or to
    nothing), canonical accepts both and refuses anything else naming the choices and the older names."""
    from dav2_core import ranges

    assert set(ranges.LEGACY_NAMES) == set(ranges.FRONT_ENDS)
    for front_end, older in ranges.LEGACY_NAMES.items():
        for old, new in older.items():
            assert old not in ranges.FRONT_ENDS[front_end] and new in ranges.FRONT_ENDS[front_end]
            assert ranges.canonical(old, front_end) == new and ranges.split(old, front_end) == ranges.split(
                new, front_end
            )
        for name in ranges.FRONT_ENDS[front_end]:
            assert ranges.canonical(name, front_end) == name
    assert ranges.LEGACY_NAMES["estimate"] == {"per_image": "min_max"}
    assert ranges.LEGACY_NAMES["video"] == {"two_pass": "clip", "per_frame": "image"}
    assert ranges.LEGACY_NAMES["stream"] == {"per_frame": "image"}
    assert ranges.LEGACY_NAMES["colorize"] == {"auto": "min_max"}
    with pytest.raises(ValueError) as err:
        ranges.canonical("two_pass", "estimate", "normalization")
    assert str(err.value) == (
        "unknown normalization 'two_pass'; choose one of min_max, percentile, batch, raw "
        "(older names accepted: per_image = min_max)"
    )
    with pytest.raises(ValueError, match="unknown range mode None"):
        ranges.canonical(None, "video")


def test_older_names_give_identical_results():
    """The Python API takes the older names as before, bit for bit: normalize_depth / range_of / RunningRange,
    EstimateOptions, VideoOptions, DepthStream and colorize_range."""
    from dav2_core.colormaps import colorize_range
    from dav2_core.normalize import RunningRange
    from dav2_core.pipeline import EstimateOptions
    from dav2_core.video import VideoOptions

    g = torch.Generator().manual_seed(4)
    x = torch.rand(3, 6, 7, generator=g) * 5
    assert torch.equal(normalize_depth(x, "per_image"), normalize_depth(x, "min_max"))
    assert torch.equal(normalize_depth(x, "per_image", invert=True), normalize_depth(x, "min_max", invert=True))
    assert all(torch.equal(a, b) for a, b in zip(range_of(x, "per_image"), range_of(x, "min_max")))
    assert not torch.equal(normalize_depth(x, "min_max"), normalize_depth(x, "percentile"))
    old, new = RunningRange("per_image"), RunningRange("min_max")
    assert old.mode == "min_max" and all(torch.equal(a, b) for a, b in zip(old.update(x), new.update(x)))
    assert EstimateOptions(normalization="per_image") == EstimateOptions(normalization="min_max")
    assert EstimateOptions(normalization="per_image").normalization == "min_max"
    assert VideoOptions(range_mode="two_pass") == VideoOptions(range_mode="clip") == VideoOptions()
    assert VideoOptions(range_mode="per_frame").range_mode == "image"
    for old_mode, new_mode in (("auto", "min_max"), ("percentile", "percentile")):
        assert all(torch.equal(a, b) for a, b in zip(colorize_range(x, old_mode), colorize_range(x, new_mode)))
    with pytest.raises(ValueError, match="unknown normalization 'sideways'; choose one of min_max"):
        EstimateOptions(normalization="sideways")
    with pytest.raises(ValueError, match="unknown video normalisation 'sideways'; choose one of clip, running, image"):
        VideoOptions(range_mode="sideways")
    with pytest.raises(ValueError, match="unknown range mode 'sideways'; choose one of min_max, percentile, manual"):
        colorize_range(x, "sideways")


def test_statistic_mode_is_the_per_image_estimate_normalisation():
    from dav2_core.ranges import statistic_mode

    assert [statistic_mode(s) for s in ("min_max", "percentile", "raw")] == ["min_max", "percentile", "raw"]
    with pytest.raises(ValueError, match="unknown range statistic 'manual'"):
        statistic_mode("manual")
