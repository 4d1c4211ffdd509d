"""Normals and point clouds from depth: exact planes, axes convention, PLY files, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dav2_core.depth import DepthMap
from dav2_core.effects.normals import depth_to_normals, depth_to_pointcloud, write_ply

H, W, FOV = 30, 40, 60.0


def _plane(normal_cam, d: float) -> torch.Tensor:
    """z-depth [1,H,W] of the plane n·P = d (camera axes: x right, y down, z forward)."""
    n = torch.tensor(normal_cam, dtype=torch.float64)
    n = n / n.norm()
    f = (W / 2) / math.tan(math.radians(FOV) / 2)
    u = (torch.arange(W, dtype=torch.float64) - (W - 1) / 2) / f
    v = (torch.arange(H, dtype=torch.float64) - (H - 1) / 2) / f
    ray_dot = n[0] * u[None, :] + n[1] * v[:, None] + n[2]
    return (d / ray_dot)[None].float()


def test_wall_facing_the_camera_is_the_classic_normal_colour():
    out = depth_to_normals(DepthMap(torch.full((2, H, W), 3.0), kind="metric"), FOV)
    assert out.shape == (2, H, W, 3)
    assert torch.allclose(out, torch.tensor([0.5, 0.5, 1.0]).expand_as(out), atol=1e-5)


def test_tilted_plane_normal_is_recovered():
    n_cam = (0.4, -0.3, -1.0)  # faces the camera, turned right and up
    out = depth_to_normals(DepthMap(_plane(n_cam, -3.0), kind="metric"), FOV)
    n = torch.tensor(n_cam) / torch.tensor(n_cam).norm()
    expected = (torch.stack([n[0], -n[1], -n[2]]) + 1) / 2  # OpenGL axes: y up, z toward the viewer
    assert torch.allclose(out[0, 2:-2, 2:-2], expected.expand(H - 4, W - 4, 3), atol=2e-3)
    assert float(out[0, 15, 20, 0]) > 0.6 and float(out[0, 15, 20, 1]) > 0.6


def test_relative_depth_gives_plausible_orientation_and_invalid_pixels_face_the_camera():
    rel = torch.linspace(1.0, 0.0, W)[None, None, :].expand(1, H, W).clone()  # left near, right far
    rel[0, 0, 0] = float("nan")
    out = depth_to_normals(DepthMap(rel), FOV)
    assert float(out[0, 15, 20, 0]) > 0.55  # recedes to the right like a corridor's left wall: normal turns right
    assert torch.allclose(out[0, 0, 0], torch.tensor([0.5, 0.5, 1.0]))
    assert torch.isfinite(out).all()


def test_pointcloud_of_a_wall():
    depth = DepthMap(torch.full((1, H, W), 2.0), kind="metric")
    img = torch.rand(1, H, W, 3)
    xyz, rgb = depth_to_pointcloud(depth, img, FOV)
    assert xyz.shape == (H * W, 3) and rgb.shape == (H * W, 3)
    assert torch.allclose(xyz[:, 2], torch.full((H * W,), -2.0))  # in front of the camera: -z
    half_width = 2.0 * math.tan(math.radians(FOV) / 2) * (W - 1) / W
    assert float(xyz[:, 0].max()) == pytest.approx(half_width, rel=1e-5)
    assert float(xyz[0, 1]) > 0  # the first (top) row is up
    assert torch.equal(rgb, img[0].reshape(-1, 3))
    sub, _ = depth_to_pointcloud(depth, img, FOV, stride=4)
    assert sub.shape == (math.ceil(H / 4) * math.ceil(W / 4), 3)


def test_pointcloud_skips_invalid_and_checks_batch():
    m = torch.full((1, H, W), 2.0)
    m[0, :5] = 0.0
    m[0, 5, 0] = float("inf")
    xyz, _ = depth_to_pointcloud(DepthMap(m, kind="metric"), torch.rand(1, H, W, 3), FOV)
    assert xyz.shape[0] == H * W - 5 * W - 1
    with pytest.raises(ValueError, match="one image"):
        depth_to_pointcloud(DepthMap(torch.rand(2, H, W)), torch.rand(2, H, W, 3), FOV)
    with pytest.warns(UserWarning, match="resizing the depth"):
        xyz, rgb = depth_to_pointcloud(DepthMap(torch.rand(1, 15, 20)), torch.rand(1, H, W, 3), FOV)
    assert xyz.shape == (H * W, 3)


def test_write_ply_binary_round_trip(tmp_path):
    xyz = torch.randn(50, 3)
    rgb = torch.rand(50, 3)
    path = write_ply(tmp_path / "cloud.ply", xyz, rgb)
    data = path.read_bytes()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    header = data[:end].decode()
    assert "format binary_little_endian 1.0" in header and "element vertex 50" in header
    rows = np.frombuffer(
        data[end:], dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("r", "u1"), ("g", "u1"), ("b", "u1")]
    )
    assert len(rows) == 50
    assert np.array_equal(np.stack([rows["x"], rows["y"], rows["z"]], 1), xyz.numpy())
    assert np.array_equal(np.stack([rows["r"], rows["g"], rows["b"]], 1), np.rint(rgb.numpy() * 255).astype(np.uint8))
    assert [p.name for p in tmp_path.iterdir()] == ["cloud.ply"]  # no temporary left


@pytest.mark.parametrize(
    "xyz, rgb, message",
    [
        (torch.rand(5, 2), torch.rand(5, 3), "xyz must be"),
        (torch.rand(5, 3), torch.rand(4, 3), "rgb must be"),
        (torch.tensor([[0.0, float("nan"), 1.0]]), torch.rand(1, 3), "NaN"),
    ],
)
def test_write_ply_bad_input(tmp_path, xyz, rgb, message):
    with pytest.raises(ValueError, match=message):
        write_ply(tmp_path / "x.ply", xyz, rgb)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fov", [0.0, 180.0, -10.0, float("nan")])
def test_bad_fov(fov):
    with pytest.raises(ValueError, match="fov_deg"):
        depth_to_normals(DepthMap(torch.rand(1, 4, 4)), fov)


def test_bad_stride():
    with pytest.raises(ValueError, match="stride"):
        depth_to_pointcloud(DepthMap(torch.rand(1, 4, 4)), torch.rand(1, 4, 4, 3), FOV, stride=0)
