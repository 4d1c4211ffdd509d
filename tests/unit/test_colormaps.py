"""Colormap LUTs vs matplotlib, colorize on tensors, colorize_depth range modes and orientation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib import colormaps as mpl_colormaps

from dav2_core.colormaps import (
    COLORMAPS,
    DEFAULT_COLORMAP,
    RANGE_MODE_HELP,
    RANGE_MODES,
    PERCENTILE_RANGE,
    colorize,
    colorize_depth,
    colorize_in_range,
    colorize_range,
    lut,
    lut_uint8_table,
)
from dav2_core.depth import DepthMap


def test_colormap_list():
    assert COLORMAPS == ("Spectral_r", "viridis", "plasma", "magma", "inferno", "turbo", "gray")
    assert DEFAULT_COLORMAP == "Spectral_r"
    assert RANGE_MODES == ("min_max", "percentile", "manual") and all(RANGE_MODE_HELP.values())


@pytest.mark.parametrize("name", COLORMAPS)
def test_lut_matches_matplotlib(name):
    table = lut(name)
    assert table.shape == (256, 3) and table.dtype == torch.float32
    cmap = mpl_colormaps[name]
    want = np.asarray(cmap(np.linspace(0.0, 1.0, 256)), dtype=np.float32)[:, :3]
    np.testing.assert_allclose(table.numpy(), want, atol=1e-6)
    # end colours of colorize are exactly matplotlib's endpoints
    out = colorize(torch.tensor([[[0.0, 1.0]]]), name)
    np.testing.assert_allclose(out[0, 0, 0].numpy(), np.asarray(cmap(0.0))[:3], atol=1e-6)
    np.testing.assert_allclose(out[0, 0, 1].numpy(), np.asarray(cmap(1.0))[:3], atol=1e-6)


def test_gray_is_identity():
    v = torch.linspace(0, 1, 1001).reshape(1, 1, -1)
    out = colorize(v, "gray")
    for c in range(3):
        torch.testing.assert_close(out[..., c], v, atol=1e-6, rtol=0)


def test_linear_interpolation_between_entries():
    table = lut("viridis")
    v = torch.tensor([[[10.5 / 255.0]]])  # halfway between entries 10 and 11
    torch.testing.assert_close(colorize(v, "viridis")[0, 0, 0], (table[10] + table[11]) / 2, atol=1e-6, rtol=0)


def test_colorize_shape_dtype_range_and_bad_values():
    g = torch.Generator().manual_seed(0)
    v = torch.rand(3, 11, 13, generator=g) * 1.4 - 0.2  # some values outside 0..1
    v[0, 0, 0] = float("nan")
    out = colorize(v, "turbo")
    assert out.shape == (3, 11, 13, 3) and out.dtype == torch.float32
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    table = lut("turbo")
    torch.testing.assert_close(out[0, 0, 0], table[0])  # NaN → entry 0
    torch.testing.assert_close(colorize(torch.full((1, 1, 1), 5.0), "turbo")[0, 0, 0], table[255])  # clamped


def test_colorize_invert():
    v = torch.rand(1, 6, 6)
    torch.testing.assert_close(colorize(v, "magma", invert=True), colorize(1 - v, "magma"), atol=1e-6, rtol=0)


def test_unknown_colormap_lists_valid_names():
    with pytest.raises(ValueError, match="Spectral_r.*gray"):
        lut("jet")
    with pytest.raises(ValueError, match="valid colormaps"):
        colorize(torch.rand(1, 2, 2), "Spectral")
    with pytest.raises(ValueError, match="valid colormaps"):
        colorize_depth(torch.rand(1, 2, 2), "hot")


def test_lut_uint8_table_for_web():
    tables = lut_uint8_table()
    assert tuple(tables) == COLORMAPS
    for name, flat in tables.items():
        assert len(flat) == 256 * 3 and all(isinstance(x, int) and 0 <= x <= 255 for x in flat)
        np.testing.assert_array_equal(np.array(flat).reshape(256, 3), np.rint(lut(name).numpy() * 255))
    assert tables["gray"][:3] == [0, 0, 0] and tables["gray"][-3:] == [255, 255, 255]


def ramp(lo: float, hi: float, w: int = 16) -> torch.Tensor:
    return torch.linspace(lo, hi, w).expand(1, 4, w).clone()


def test_near_is_high_end_spectral_red_for_both_kinds():
    red_end, blue_end = lut("Spectral_r")[255], lut("Spectral_r")[0]
    assert red_end[0] > red_end[2] and blue_end[2] > blue_end[0]  # high end red, low end blue
    rel = DepthMap(ramp(0.1, 5.0), kind="relative")  # right = nearest
    met = DepthMap(ramp(0.5, 10.0), kind="metric")  # left = nearest
    for mode in ("min_max", "percentile"):
        r = colorize_depth(rel, range_mode=mode)
        m = colorize_depth(met, range_mode=mode)
        torch.testing.assert_close(r[0, 0, -1], red_end)
        torch.testing.assert_close(r[0, 0, 0], blue_end)
        torch.testing.assert_close(m[0, 0, 0], red_end)
        torch.testing.assert_close(m[0, 0, -1], blue_end)
        inv = colorize_depth(met, range_mode=mode, invert=True)
        torch.testing.assert_close(inv[0, 0, 0], blue_end)


def test_manual_range_in_depth_units():
    met = DepthMap(torch.tensor([[[1.0, 2.0, 3.0, 4.0, 6.0]]]), kind="metric")
    out = colorize_depth(met, "gray", range_mode="manual", vmin=2.0, vmax=4.0)[0, 0, :, 0]
    # metres: vmin (2 m) is near = white, vmax (4 m) far = black, outside clamped
    torch.testing.assert_close(out, torch.tensor([1.0, 1.0, 0.5, 0.0, 0.0]), atol=1e-6, rtol=0)
    rel = DepthMap(torch.tensor([[[1.0, 2.0, 3.0, 4.0, 6.0]]]))
    out = colorize_depth(rel, "gray", range_mode="manual", vmin=2.0, vmax=4.0)[0, 0, :, 0]
    torch.testing.assert_close(out, torch.tensor([0.0, 0.0, 0.5, 1.0, 1.0]), atol=1e-6, rtol=0)


@pytest.mark.parametrize("kind", ["relative", "metric"])
def test_colorize_range_in_depth_units(kind):
    g = torch.Generator().manual_seed(3)
    values = torch.rand(2, 9, 11, generator=g) * 4.0 + 0.5
    values[1, 2, 3] = float("nan")
    depth = DepthMap(values, kind=kind if kind == "metric" else "relative")
    lo, hi = colorize_range(depth, "min_max")
    finite = [v[torch.isfinite(v)].double().numpy() for v in values]
    np.testing.assert_allclose(lo.numpy(), [f.min() for f in finite], rtol=1e-6)
    np.testing.assert_allclose(hi.numpy(), [f.max() for f in finite], rtol=1e-6)
    lo, hi = colorize_range(depth, "percentile")
    np.testing.assert_allclose(lo.numpy(), [np.percentile(f, PERCENTILE_RANGE[0]) for f in finite], rtol=1e-5)
    np.testing.assert_allclose(hi.numpy(), [np.percentile(f, PERCENTILE_RANGE[1]) for f in finite], rtol=1e-5)
    lo, hi = colorize_range(depth, "manual", 1.0, 3.0)
    assert lo.tolist() == [1.0, 1.0] and hi.tolist() == [3.0, 3.0] and lo.dtype == torch.float32
    for mode, bounds in (("min_max", ()), ("percentile", ()), ("manual", (1.0, 3.0))):
        for invert in (False, True):  # colorize_depth is colorize_in_range over colorize_range, bit for bit
            assert torch.equal(
                colorize_depth(depth, "turbo", invert, mode, *bounds),
                colorize_in_range(depth, *colorize_range(depth, mode, *bounds), "turbo", invert),
            )


def test_colorize_in_range_clamps_and_checks_bounds():
    met = DepthMap(torch.tensor([[[1.0, 2.0, 3.0, 4.0, 6.0]]]), kind="metric")
    out = colorize_in_range(met, torch.tensor([2.0]), torch.tensor([4.0]), "gray")[0, 0, :, 0]
    torch.testing.assert_close(out, torch.tensor([1.0, 1.0, 0.5, 0.0, 0.0]), atol=1e-6, rtol=0)  # 2 m near = white
    zero = colorize_in_range(met, torch.tensor([3.0]), torch.tensor([3.0]), "viridis", invert=True)
    torch.testing.assert_close(zero[0, 0], lut("viridis")[0].expand(5, 3))  # zero range: first colour
    with pytest.raises(ValueError, match="one lo and one hi per image"):
        colorize_in_range(met, torch.tensor([1.0, 2.0]), torch.tensor([3.0, 4.0]))
    with pytest.raises(ValueError, match="unknown range mode"):
        colorize_range(met, "minmax")


@pytest.mark.parametrize("vmin, vmax", [(5.0, 5.0), (6.0, 2.0)])
def test_manual_min_not_below_max_raises(vmin, vmax):
    with pytest.raises(ValueError, match="min must be smaller than max"):
        colorize_depth(torch.rand(1, 3, 3), range_mode="manual", vmin=vmin, vmax=vmax)


def test_manual_needs_finite_bounds_and_bad_range_mode():
    with pytest.raises(ValueError, match="both min and max"):
        colorize_depth(torch.rand(1, 3, 3), range_mode="manual", vmin=1.0)
    with pytest.raises(ValueError, match="finite"):
        colorize_depth(torch.rand(1, 3, 3), range_mode="manual", vmin=float("nan"), vmax=1.0)
    with pytest.raises(ValueError, match="min_max, percentile, manual"):
        colorize_depth(torch.rand(1, 3, 3), range_mode="minmax")


def test_colorize_depth_nan_and_constant():
    x = torch.rand(2, 5, 5)
    x[0, 1, 1] = float("nan")
    x[1] = 7.0
    out = colorize_depth(x, "viridis")
    assert out.shape == (2, 5, 5, 3) and torch.isfinite(out).all()
    first = lut("viridis")[0]
    torch.testing.assert_close(out[0, 1, 1], first)
    assert torch.allclose(out[1], first.expand(5, 5, 3))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_colorize_on_cuda_matches_cpu():
    x = torch.rand(2, 8, 8)
    out = colorize_depth(x.cuda(), "turbo", range_mode="percentile")
    assert out.device.type == "cuda"
    torch.testing.assert_close(out.cpu(), colorize_depth(x, "turbo", range_mode="percentile"), atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", COLORMAPS)
def test_colorize_uint8_is_colorize_to_8_bits(name):
    """The 8-bit table lookup (video frames) stays within one 8-bit step of colorize rounded to 8 bits."""
    from dav2_core.colormaps import colorize_uint8

    values = torch.rand(2, 33, 47, generator=torch.Generator().manual_seed(0))
    values[0, 0, :3] = torch.tensor([0.0, 1.0, float("nan")])
    got = colorize_uint8(values, name)
    want = (colorize(values, name) * 255).round().to(torch.uint8)
    assert got.shape == (2, 33, 47, 3) and got.dtype == torch.uint8
    assert (got.int() - want.int()).abs().max() <= 1
    assert got[0, 0, 2].tolist() == got[0, 0, 0].tolist()  # NaN -> the far end, like colorize
