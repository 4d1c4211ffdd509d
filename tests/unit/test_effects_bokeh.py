"""Lens blur: sharpness kept in the focus plane, lost far from it, no halos at occlusion edges, bad input."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from dav2_core.depth import DepthMap
from dav2_core.effects.bokeh import disc_blur, lens_blur


def _texture(h: int, w: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (0.2 + 0.6 * torch.rand(1, h, w, 3, generator=g)).float()


def _vol(img: torch.Tensor) -> float:
    """Variance of the Laplacian of the grey image [H,W,3] (a standard sharpness measure)."""
    grey = img.mean(-1).numpy().astype(np.float64)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def _three_planes(h: int = 96, w: int = 144) -> DepthMap:
    """Relative depth: left third far (1.0), middle third 2.0, right third near (3.0)."""
    v = torch.ones(1, h, w)
    v[:, :, w // 3 : 2 * w // 3] = 2.0
    v[:, :, 2 * w // 3 :] = 3.0
    return DepthMap(v, kind="relative")


def test_focus_plane_keeps_sharpness_far_plane_loses_it():
    img = _texture(96, 144)
    depth = _three_planes()
    out, coc = lens_blur(img, depth, focus_depth=2.0, max_blur_radius=6.0, focus_range=0.1)
    assert out.shape == img.shape and coc.shape == (1, 96, 144)
    m = 10  # stay clear of the plane borders (blur radius 6 px)
    mid = (slice(m, -m), slice(48 + m, 96 - m))
    far = (slice(m, -m), slice(m, 48 - m))
    near = (slice(m, -m), slice(96 + m, 144 - m))
    vin, vout = _vol(img[0][mid]), _vol(out[0][mid])
    assert abs(vout - vin) / vin < 0.05
    assert _vol(out[0][far]) < 0.5 * _vol(img[0][far])
    assert _vol(out[0][near]) < 0.5 * _vol(img[0][near])
    assert float(coc[0][mid].max()) == 0.0 and float(coc[0][far].min()) > 0.4


def test_sharp_foreground_has_no_halo_over_blurred_background():
    h, w = 96, 96
    g = torch.Generator().manual_seed(1)
    img = torch.zeros(1, h, w, 3)
    img[..., 1] = 0.3 + 0.5 * torch.rand(1, h, w, generator=g)  # green textured background, red = 0
    fg = (slice(32, 64), slice(32, 64))
    img[0, fg[0], fg[1]] = torch.tensor([0.9, 0.1, 0.1])
    v = torch.ones(1, h, w)
    v[0, fg[0], fg[1]] = 5.0  # foreground much nearer
    out, _ = lens_blur(img, DepthMap(v), focus_point=(0.5, 0.5), max_blur_radius=8.0, focus_range=0.05)
    # every foreground pixel, its edge included, is unchanged
    assert torch.allclose(out[0, fg[0], fg[1]], img[0, fg[0], fg[1]], atol=1e-5)
    # the background ring right next to it is blurred but holds no foreground red
    ring = torch.zeros(h, w, dtype=torch.bool)
    ring[29:67, 29:67] = True
    ring[32:64, 32:64] = False
    assert float(out[0][ring][:, 0].max()) < 0.01
    assert float((out[0][ring][:, 1] - img[0][ring][:, 1]).abs().mean()) > 0.02  # it is blurred
    # a depth-unaware blur of the same image does bleed red into that ring (the test can fail)
    naive = disc_blur(img.permute(0, 3, 1, 2), 8.0).permute(0, 2, 3, 1)
    assert float(naive[0][ring][:, 0].max()) > 0.2


def test_blurred_foreground_does_not_take_sharp_background_colour():
    h, w = 96, 96
    g = torch.Generator().manual_seed(2)
    img = torch.zeros(1, h, w, 3)
    img[..., 1] = 0.3 + 0.5 * torch.rand(1, h, w, generator=g)
    img[0, 24:72, 24:72] = torch.tensor([0.9, 0.0, 0.1])
    v = torch.ones(1, h, w)
    v[0, 24:72, 24:72] = 5.0
    out, coc = lens_blur(img, DepthMap(v), focus_point=(0.05, 0.05), max_blur_radius=6.0, focus_range=0.05)
    # the blurred foreground's interior stays pure red, with no green from the sharp background
    assert float(out[0, 32:64, 32:64, 1].max()) < 1e-4
    assert float(coc[0, 48, 48]) == pytest.approx(1.0)
    # background far from the blurred object keeps its texture exactly
    assert torch.allclose(out[0, :10, :], img[0, :10, :], atol=1e-5)


def test_metric_focus_in_metres_and_out_of_range():
    img = _texture(48, 72)
    metres = torch.full((1, 48, 72), 8.0)
    metres[:, :, 36:] = 2.0
    depth = DepthMap(metres, kind="metric")
    out, coc = lens_blur(img, depth, focus_depth=2.0, max_blur_radius=4.0)
    assert float(coc[0, :, 40:].max()) == 0.0 and float(coc[0, :, :30].min()) > 0.5
    assert torch.allclose(out[0, 5:-5, 44:-5], img[0, 5:-5, 44:-5], atol=1e-5)
    with pytest.raises(ValueError, match="outside the depth range 2..8 m"):
        lens_blur(img, depth, focus_depth=20.0)
    with pytest.raises(ValueError, match="outside the depth range"):
        lens_blur(img, _three_planes(48, 72), focus_depth=7.5)


def test_zero_range_depth_is_left_sharp_with_warning():
    img = _texture(32, 40)
    with pytest.warns(UserWarning, match="no range"):
        out, coc = lens_blur(img, DepthMap(torch.full((1, 32, 40), 0.7)), max_blur_radius=5.0)
    assert torch.equal(out, img) and float(coc.abs().max()) == 0.0


def test_depth_of_other_size_is_resized_with_warning_and_batches_pair():
    img = _texture(48, 72).repeat(2, 1, 1, 1)
    small = _three_planes(24, 36)
    with pytest.warns(UserWarning, match="resizing the depth"):
        out, coc = lens_blur(img, small, focus_depth=2.0, max_blur_radius=3.0)
    assert out.shape == (2, 48, 72, 3) and coc.shape == (2, 48, 72)
    assert torch.allclose(out[0], out[1])  # one depth reused for both images
    with pytest.raises(ValueError, match="image batch has 2 images but depth batch has 3"):
        lens_blur(img, DepthMap(torch.rand(3, 48, 72)))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"focus_depth": 2.0, "focus_point": (0.5, 0.5)}, "not both"),
        ({"focus_point": (1.5, 0.5)}, "outside the image"),
        ({"max_blur_radius": -1.0}, "max_blur_radius"),
        ({"focus_range": 2.0}, "focus_range"),
        ({"layers": 2}, "layers"),
        ({"focus_depth": float("nan")}, "finite"),
    ],
)
def test_bad_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        lens_blur(_texture(24, 36), _three_planes(24, 36), **kwargs)


def test_bad_image():
    with pytest.raises(ValueError, match="1, 3 or 4 channels"):
        lens_blur(torch.rand(1, 24, 36, 2), _three_planes(24, 36))
    with pytest.raises(ValueError, match=r"must hold 0\.\.1.*divide it by 255"):
        lens_blur(_texture(24, 36) * 255, _three_planes(24, 36))


def test_real_photo_ground_plane(shared_images):
    photo = cv2.cvtColor(cv2.imread(str(shared_images[0])), cv2.COLOR_BGR2RGB)
    photo = cv2.resize(photo, (128, 96), interpolation=cv2.INTER_AREA)
    img = torch.from_numpy(photo).float().div(255)[None]
    rows = torch.linspace(0.0, 1.0, 96)[:, None].expand(96, 128)  # nearer towards the bottom
    out, coc = lens_blur(img, DepthMap(rows[None].clone()), focus_point=(0.5, 1.0), max_blur_radius=6.0)
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    assert float(coc[0, -1].max()) == 0.0 and float(coc[0, 0].min()) > 0.9
    assert _vol(out[0, :20]) < 0.5 * _vol(img[0, :20])
    assert torch.allclose(out[0, -3:], img[0, -3:], atol=1e-5)
