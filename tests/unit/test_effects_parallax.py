"""Parallax frames: displacement ∝ inverse depth, z-ordering, no holes, background-first fill, bad input."""

from __future__ import annotations

import cv2
import pytest
import torch

from dav2_core.depth import DepthMap
from dav2_core.effects.parallax import MOTIONS, parallax_frames


def _three_plane_scene(h: int = 60, w: int = 150):
    """Dark textured image with one bright 3x3 marker per plane; metric planes at 2, 4 and 8 m."""
    g = torch.Generator().manual_seed(0)
    img = 0.1 + 0.2 * torch.rand(1, h, w, 3, generator=g)
    metres = torch.full((1, h, w), 8.0)
    metres[:, :, 50:100] = 4.0
    metres[:, :, 100:] = 2.0
    markers = [(30, 25), (30, 75), (30, 125)]  # (row, col), one per plane: 8 m, 4 m, 2 m
    for r, c in markers:
        img[0, r - 1 : r + 2, c - 1 : c + 2] = 1.0
    return img, DepthMap(metres, kind="metric"), markers


def _marker_x(frame: torch.Tensor, r: int, c: int, reach: int = 20) -> float:
    """Centroid column of the bright marker near (r, c) in frame [H,W,3]."""
    patch = frame[r - 3 : r + 4, max(0, c - reach) : c + reach + 1].mean(-1)
    cols = torch.nonzero(patch > 0.9)[:, 1].float()
    assert len(cols) > 0, "marker lost"
    return float(cols.mean()) + max(0, c - reach)


def test_displacement_proportional_to_inverse_depth():
    img, depth, markers = _three_plane_scene()
    # swing at t = 1/4 is the largest shift to the right: strength × width × (1/Z) / (1/Z_nearest)
    frames = parallax_frames(img, depth, frames=4, motion="swing", strength=0.08)
    assert frames.shape == (4, 60, 150, 3)
    shifts = [_marker_x(frames[1], r, c) - c for r, c in markers]
    expected = [0.08 * 150 * z for z in (2 / 8, 2 / 4, 2 / 2)]  # 3, 6, 12 px
    for got, want in zip(shifts, expected):
        assert got == pytest.approx(want, abs=0.6)
    assert shifts[2] / shifts[0] == pytest.approx(4.0, rel=0.15)  # 8 m vs 2 m
    # frame 0 of the swing is the photo itself
    assert torch.allclose(frames[0], img[0], atol=1e-6)


def test_relative_depth_farthest_point_stays_put():
    img, _, markers = _three_plane_scene()
    rel = torch.ones(1, 60, 150)
    rel[:, :, 50:100] = 2.0
    rel[:, :, 100:] = 3.0  # normalised inverse depth 0, 0.5, 1
    frames = parallax_frames(img, DepthMap(rel), frames=4, motion="circle", strength=0.06)
    shifts = [_marker_x(frames[0], r, c) - c for r, c in markers]  # circle at t=0: full shift to the right
    assert shifts == pytest.approx([0.0, 4.5, 9.0], abs=0.6)


def test_nearer_surface_wins_and_disocclusion_is_filled_with_background():
    h, w = 64, 96
    g = torch.Generator().manual_seed(3)
    img = torch.zeros(1, h, w, 3)
    img[..., 1] = 0.4 + 0.4 * torch.rand(1, h, w, generator=g)  # green background, red = 0
    img[0, 20:44, 36:60] = torch.tensor([0.9, 0.1, 0.1])  # red foreground square
    rel = torch.zeros(1, h, w)
    rel[0, 20:44, 36:60] = 1.0
    frames = parallax_frames(img, DepthMap(rel), frames=4, motion="swing", strength=0.1)
    f = frames[1]  # foreground moved right by 9.6 px, background still
    # the foreground covers the background where it lands, whole and unchanged
    assert torch.allclose(f[20:44, 46:69], img[0, 20:44, 36:59], atol=1e-6)
    # the uncovered strip it left behind is filled from the background, not smeared red
    strip = f[20:44, 36:45]
    assert float(strip[..., 0].max()) < 1e-6 and float(strip[..., 1].min()) >= 0.4 - 1e-6


@pytest.mark.parametrize("motion", MOTIONS)
def test_no_holes_in_any_motion(motion):
    img, depth, _ = _three_plane_scene(48, 120)
    img = img.clamp_min(0.1)
    frames = parallax_frames(img, depth, frames=5, motion=motion, strength=0.05)
    assert frames.shape == (5, 48, 120, 3)
    assert torch.isfinite(frames).all()
    assert float(frames.min()) >= 0.1 - 1e-6  # a hole would be black
    assert not torch.allclose(frames[-1], frames[0])  # the camera moved


def test_zoom_in_magnifies_near_more_than_far():
    img, depth, markers = _three_plane_scene()
    last = parallax_frames(img, depth, frames=3, motion="zoom_in", strength=0.05)[-1]
    cx = (150 - 1) / 2
    grow = [(_marker_x(last, r, c) - cx) / (c - cx) - 1 for r, c in (markers[0], markers[2])]
    # magnification - 1 = 2 × strength × inverse depth: 0.025 at 8 m, 0.1 at 2 m (the 4 m marker is central)
    assert grow == pytest.approx([0.025, 0.1], abs=0.012)


def test_dolly_keeps_the_centre_subject():
    img, depth, markers = _three_plane_scene()
    last = parallax_frames(img, depth, frames=2, motion="dolly", strength=0.1)[-1]
    r, c = markers[1]  # the 4 m plane (inverse depth 0.5) is at the centre and keeps its size
    assert _marker_x(last, r, c) == pytest.approx(c, abs=0.5)
    cx = (150 - 1) / 2
    for (r, c), d in ((markers[0], 0.25), (markers[2], 1.0)):  # far grows, near shrinks: 1.1 / (1 + 0.2 d)
        assert _marker_x(last, r, c) - cx == pytest.approx((c - cx) * 1.1 / (1 + 0.2 * d), abs=0.6)


def test_batches_and_frame_order():
    img, depth, _ = _three_plane_scene(32, 60)
    two = torch.cat([img, img.flip(2)])
    frames = parallax_frames(two, depth, frames=3, motion="circle", strength=0.04)
    assert frames.shape == (6, 32, 60, 3)
    single = parallax_frames(img, depth, frames=3, motion="circle", strength=0.04)
    assert torch.allclose(frames[:3], single)
    with pytest.raises(ValueError, match="batch"):
        parallax_frames(torch.rand(2, 32, 60, 3), DepthMap(torch.rand(3, 32, 60)), frames=2)


def test_depth_of_other_size_is_resized_with_warning():
    img, depth, _ = _three_plane_scene(32, 60)
    with pytest.warns(UserWarning, match="resizing the depth"):
        out = parallax_frames(img, DepthMap(torch.rand(1, 16, 30)), frames=2, motion="swing")
    assert out.shape == (2, 32, 60, 3)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"frames": 0}, "frames"),
        ({"frames": -3}, "frames"),
        ({"frames": 2, "motion": "spin"}, "unknown motion"),
        ({"frames": 2, "strength": -0.1}, "strength"),
    ],
)
def test_bad_parameters(kwargs, message):
    img, depth, _ = _three_plane_scene(32, 60)
    with pytest.raises(ValueError, match=message):
        parallax_frames(img, depth, **kwargs)


def test_real_photo_with_ramp_depth(shared_images):
    photo = cv2.cvtColor(cv2.imread(str(shared_images[-1])), cv2.COLOR_BGR2RGB)
    photo = cv2.resize(photo, (120, 80), interpolation=cv2.INTER_AREA)
    img = torch.from_numpy(photo).float().div(255)[None]
    rel = torch.linspace(0.0, 1.0, 80)[:, None].expand(80, 120)[None].clone()
    frames = parallax_frames(img, DepthMap(rel), frames=6, motion="circle", strength=0.05)
    assert frames.shape == (6, 80, 120, 3) and torch.isfinite(frames).all()
    # the top (far) row barely moves, the bottom (near) row moves by ~6 px
    top = (frames[:, :3] - img[:, :3]).abs().mean()
    bottom = (frames[:, -3:] - img[:, -3:]).abs().mean()
    assert float(bottom) > 3 * float(top)


def test_magnified_foreground_has_no_cracks_showing_the_background():
    h, w = 64, 96
    img = torch.zeros(1, h, w, 3)
    img[..., 1] = 0.8  # green background
    img[0, 16:48, 56:88] = torch.tensor([0.9, 0.1, 0.1])  # red box right of centre, nearer
    rel = torch.zeros(1, h, w)
    rel[0, 16:48, 56:88] = 1.0
    last = parallax_frames(img, DepthMap(rel), frames=2, motion="zoom_in", strength=0.1)[-1]
    # the box grows by 1.2 about the image centre (47.5, 31.5): columns 57.7..95.9, rows 12.3..50.7
    inside = last[15:48, 60:94]
    assert float(inside[..., 1].max()) < 0.15 and float(inside[..., 0].min()) > 0.85
