"""dav2_core.geometry: cameras, back-projection, meshes (against core's own triangulation), GLB files, and core
DA3_GEOMETRY / MOGE_GEOMETRY packets built exactly as ComfyUI 0.33's nodes build them (no real weights).

Core's code is read from the vendored ComfyUI 0.33 tree (../shared/vendor); the tests that need it skip with
the reason when it is absent.
"""

from __future__ import annotations

import importlib.util
import math
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dav2_core import geometry as geo
from dav2_core.depth import DepthMap
from dav2_core.effects.normals import depth_to_pointcloud

VENDOR = Path(__file__).resolve().parents[3] / "shared" / "vendor"
CORE_TARBALL = "ComfyUI-0.33.0-783545f.tar.gz"
CORE_FILES = ("comfy/ldm/moge/geometry.py",)


@pytest.fixture(scope="module")
def core_geometry(tmp_path_factory):
    """core's ``comfy.ldm.moge.geometry`` (triangulate_grid_mesh, depth_map_to_point_map), vendored 0.33 tree."""
    tarball = VENDOR / CORE_TARBALL
    if not tarball.is_file():
        pytest.skip(f"{tarball} is absent (../shared/vendor holds the vendored ComfyUI 0.33 tree)")
    pytest.importorskip("scipy")  # core's module imports it
    out = tmp_path_factory.mktemp("comfy033")
    with tarfile.open(tarball) as tar:
        for name in CORE_FILES:
            member = tar.getmember(f"ComfyUI/{name}")
            (out / Path(name).name).write_bytes(tar.extractfile(member).read())
    spec = importlib.util.spec_from_file_location("core_moge_geometry", out / "geometry.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def smooth_scene(h: int = 23, w: int = 31, seed: int = 0) -> torch.Tensor:
    """[1,H,W] metres: a tilted plane 2..3 m with a box at 0.7 m (a depth discontinuity) and a hole."""
    g = torch.Generator().manual_seed(seed)
    z = 2.0 + torch.linspace(0, 1, w)[None, None, :].expand(1, h, w) + 0.001 * torch.rand(1, h, w, generator=g)
    z = z.clone()
    z[0, 5:9, 7:12] = 0.7
    z[0, 0, 0] = float("nan")
    return z


# ------------------------------------------------------------------------------------------------ camera


def test_fov_intrinsics_round_trip_and_match_the_normals_camera():
    k = geo.intrinsics_from_fov(70.0, 640, 480)
    assert geo.fov_from_intrinsics(k) == pytest.approx(70.0, abs=1e-4)
    f_px = 320 / math.tan(math.radians(35))
    assert float(k[0, 0]) * 640 == pytest.approx(f_px, rel=1e-6)
    assert float(k[1, 1]) * 480 == pytest.approx(f_px, rel=1e-6)  # square pixels
    # a pixel at the image centre looks straight ahead; the corner pixel centre at (W-1)/2 px off axis
    z = torch.full((1, 480, 640), 2.0)
    p = geo.backproject(z, k)
    assert float(p[0, 0, 0, 0]) == pytest.approx(-(639 / 2) / f_px * 2.0, rel=1e-5)
    assert float(p[0, 0, 0, 1]) == pytest.approx(-(479 / 2) / f_px * 2.0, rel=1e-5)


@pytest.mark.parametrize("bad", [0.0, 180.0, -5.0, float("nan"), float("inf"), "60"])
def test_bad_fov_is_refused(bad):
    with pytest.raises(ValueError, match="field of view"):
        geo.intrinsics_from_fov(bad, 10, 10)


def test_backprojection_matches_core_moge_point_map(core_geometry):
    """Our normalised-intrinsics back-projection is core's ``depth_map_to_point_map`` (MoGe's convention)."""
    k = torch.tensor([[0.8, 0.0, 0.52], [0.0, 1.1, 0.47], [0.0, 0.0, 1.0]])
    z = 1.0 + torch.rand(2, 9, 13, generator=torch.Generator().manual_seed(1))
    ours = geo.backproject(z, k)
    theirs = core_geometry.depth_map_to_point_map(z, k)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------------------- mesh


@pytest.mark.parametrize("decimation,cut", [(1, 0.04), (2, 0.04), (3, 0.0), (1, 0.2)])
def test_mesh_vertices_and_faces_equal_core_triangulation(core_geometry, decimation, cut):
    """Same vertices (glTF axes) and faces (winding flipped as core's mesh nodes flip it) as core's
    ``triangulate_grid_mesh`` on the same point map."""
    d = DepthMap(smooth_scene(), "metric")
    mesh = geo.depth_to_mesh(d, decimation=decimation, discontinuity=cut)
    z, valid = geo.camera_z(d)
    points = geo.backproject(z, geo.camera_intrinsics(d, 60.0))[0]
    points[~valid[0]] = float("inf")  # how core's DA3 mesh node masks pixels
    v, f, uv = core_geometry.triangulate_grid_mesh(
        points, decimation=decimation, discontinuity_threshold=cut, depth=torch.where(valid[0], z[0], 0.0)
    )
    assert mesh.vertices.shape == v.shape and mesh.vertices.shape[0] > 0
    torch.testing.assert_close(mesh.vertices, v * torch.tensor([1.0, -1.0, -1.0]))
    assert torch.equal(mesh.faces, f[:, [0, 2, 1]])
    assert mesh.uvs.shape == uv.shape


def test_mesh_cuts_the_discontinuity_and_is_in_metres():
    d = DepthMap(smooth_scene(), "metric")
    cut = geo.depth_to_mesh(d, discontinuity=0.04)
    whole = geo.depth_to_mesh(d, discontinuity=0.0)
    assert cut.faces.shape[0] < whole.faces.shape[0]
    # no triangle of the cut mesh joins the box (0.7 m) to the plane (>= 2 m)
    zs = -cut.vertices[:, 2][cut.faces]  # glTF: z toward the viewer, so depth = -z
    assert float((zs.amax(1) / zs.amin(1)).max()) < 1.5
    # metric: vertex depths are the depth map's metres
    depths = -whole.vertices[:, 2]
    assert float(depths.min()) == pytest.approx(0.7, abs=1e-5)
    assert float(depths.max()) == pytest.approx(float(np.nanmax(smooth_scene().numpy())), abs=1e-5)


def test_mesh_faces_face_the_camera_and_uvs_hit_pixel_centres():
    d = DepthMap(torch.full((1, 4, 6), 3.0), "metric")
    mesh = geo.depth_to_mesh(d, torch.rand(1, 4, 6, 3))
    a, b, c = (mesh.vertices[mesh.faces[:, i]] for i in range(3))
    normals = torch.cross(b - a, c - a, dim=-1)
    assert bool((normals[:, 2] > 0).all())  # counter-clockwise seen from the camera (+z toward the viewer)
    assert mesh.faces.shape[0] == 2 * 3 * 5
    assert float(mesh.uvs[0, 0]) == pytest.approx(0.5 / 6) and float(mesh.uvs[0, 1]) == pytest.approx(0.5 / 4)
    assert mesh.texture.shape == (4, 6, 3)


def test_relative_mesh_uses_the_documented_1_to_10_scale():
    v = torch.linspace(0.0, 5.0, 8 * 8).reshape(1, 8, 8)  # inverse depth: larger = nearer
    mesh = geo.depth_to_mesh(DepthMap(v, "relative"), discontinuity=0.0)
    depths = -mesh.vertices[:, 2]
    assert float(depths.min()) == pytest.approx(1.0, rel=1e-5)
    assert float(depths.max()) == pytest.approx(10.0, rel=1e-5)


def test_mesh_uses_the_depth_camera_unless_told_not_to():
    k = geo.intrinsics_from_fov(30.0, 8, 6)[None]
    d = DepthMap(torch.full((1, 6, 8), 2.0), "metric", intrinsics=k)
    narrow = geo.depth_to_mesh(d, fov_deg=90.0)
    wide = geo.depth_to_mesh(d, fov_deg=90.0, use_depth_camera=False)
    half_width = lambda m: float(m.vertices[:, 0].abs().max())
    assert half_width(narrow) == pytest.approx(2.0 * math.tan(math.radians(15)) * 7 / 8, rel=1e-5)
    assert half_width(wide) == pytest.approx(2.0 * math.tan(math.radians(45)) * 7 / 8, rel=1e-5)


def test_glb_read_back_with_trimesh_has_the_vertex_count(tmp_path):
    trimesh = pytest.importorskip("trimesh")
    d = DepthMap(smooth_scene(), "metric")
    image = torch.rand(1, 23, 31, 3, generator=torch.Generator().manual_seed(3))
    mesh = geo.depth_to_mesh(d, image, decimation=2)
    path = geo.write_glb(tmp_path / "scene.glb", mesh)
    loaded = trimesh.load(path, force="mesh", process=False)
    assert len(loaded.vertices) == mesh.vertices.shape[0]
    assert len(loaded.faces) == mesh.faces.shape[0]
    np.testing.assert_allclose(np.asarray(loaded.vertices), mesh.vertices.numpy(), rtol=1e-6, atol=1e-6)
    # the texture went in, and the UVs read back in glTF's top-left convention
    assert loaded.visual.material.baseColorTexture.size == (31, 23)
    np.testing.assert_allclose(1.0 - np.asarray(loaded.visual.uv)[:, 1], mesh.uvs[:, 1].numpy(), atol=1e-6)
    assert not list(tmp_path.glob("*.tmp*"))  # atomic: no temporary left behind


def test_point_cloud_and_mesh_share_one_back_projection():
    d = DepthMap(torch.full((1, 5, 7), 2.5), "metric")
    xyz, _ = depth_to_pointcloud(d, torch.rand(1, 5, 7, 3), fov_deg=50.0)
    mesh = geo.depth_to_mesh(d, fov_deg=50.0, discontinuity=0.0)
    torch.testing.assert_close(xyz, mesh.vertices)


# ----------------------------------------------------------------------------------------------- EXIF


def jpeg_with_exif(path: Path, size=(400, 300), **tags) -> Path:
    image = Image.new("RGB", size, (120, 90, 60))
    exif = image.getexif()
    sub = exif.get_ifd(0x8769)
    orientation = tags.pop("orientation", None)
    if orientation is not None:
        exif[0x0112] = orientation
    codes = {"f35": 0xA405, "focal": 0x920A, "xres": 0xA20E, "unit": 0xA210, "px": 0xA002, "py": 0xA003}
    for key, value in tags.items():
        sub[codes[key]] = value
    image.save(path, exif=exif)
    return path


def test_exif_35mm_focal_gives_the_field_of_view(tmp_path):
    fov, how = geo.exif_fov(jpeg_with_exif(tmp_path / "a.jpg", f35=26))
    f_px = 26 / geo.FULL_FRAME_DIAGONAL_MM * math.hypot(400, 300)
    assert fov == pytest.approx(math.degrees(2 * math.atan(200 / f_px)), rel=1e-6)
    assert "35 mm" in how


def test_exif_focal_plane_resolution_and_rotation(tmp_path):
    # 4.25 mm lens, 1000 px/mm sensor pitch (unit 4 = mm), 4000x3000 sensor
    tags = dict(focal=4.25, xres=1000.0, unit=4, px=4000, py=3000)
    fov, _ = geo.exif_fov(jpeg_with_exif(tmp_path / "b.jpg", **tags))
    assert fov == pytest.approx(math.degrees(2 * math.atan(2000 / 4250)), rel=1e-6)
    rotated, _ = geo.exif_fov(jpeg_with_exif(tmp_path / "c.jpg", orientation=6, **tags))
    assert rotated == pytest.approx(math.degrees(2 * math.atan(1500 / 4250)), rel=1e-6)


# --------------------------------------------------------------------------------------- core packets


def da3_mono_packet(depth: torch.Tensor, variant: str = "small") -> dict:
    """As DA3Inference._execute_mono builds it: depth, image, mode; sky (Mono/Metric) or confidence (Small/Base)."""
    b, h, w = depth.shape
    geometry = {"depth": depth.contiguous(), "image": torch.rand(b, h, w, 3), "mode": "mono"}
    if variant in ("mono", "metric"):
        geometry["sky"] = torch.zeros(b, h, w).contiguous()
    else:
        geometry["confidence"] = torch.ones(b, h, w).contiguous()
    return geometry


def da3_multiview_packet(depth: torch.Tensor, intrinsics: torch.Tensor | None) -> dict:
    """As DA3Inference._execute_multiview builds it (identity cameras when the model gave none)."""
    s = depth.shape[0]
    if intrinsics is None:
        extrinsics = torch.eye(4)[None, None].expand(1, s, 4, 4).clone()
        intrinsics = torch.eye(3)[None, None].expand(1, s, 3, 3).clone()
    else:
        extrinsics = torch.eye(4)[:3][None, None].expand(1, s, 3, 4).clone()
    return {
        "depth": depth.contiguous(),
        "image": torch.rand(*depth.shape, 3),
        "mode": "multiview",
        "extrinsics": extrinsics.contiguous(),
        "intrinsics": intrinsics.contiguous(),
        "confidence": torch.ones_like(depth),
    }


def moge_packet(depth: torch.Tensor, fov_x: float = 60.0, normals: bool = True, mask_inf: bool = True) -> dict:
    """As MoGeInference builds it from MoGeModel.infer (force_projection, apply_mask): points, depth, intrinsics
    (normalised, centred), mask, normal (MoGe-2 normal checkpoints), image."""
    b, h, w = depth.shape
    aspect = w / h
    diag = (1 + aspect**2) ** 0.5
    focal = aspect / diag / math.tan(math.radians(fov_x / 2))
    f_diag = focal / 2 * diag
    k = torch.tensor([[f_diag / aspect, 0.0, 0.5], [0.0, f_diag, 0.5], [0.0, 0.0, 1.0]]).expand(b, 3, 3).clone()
    mask = torch.isfinite(depth) & (depth > 0)
    points = geo.backproject(depth.nan_to_num(1.0), k)
    if mask_inf:
        points = torch.where(mask[..., None], points, torch.full_like(points, float("inf")))
        depth = torch.where(mask, depth, torch.full_like(depth, float("inf")))
    packet = {"image": torch.rand(b, h, w, 3), "points": points, "depth": depth, "intrinsics": k, "mask": mask}
    if normals:
        packet["normal"] = torch.nn.functional.normalize(torch.rand(b, h, w, 3), dim=-1)
    return packet


def test_da3_relative_depth_becomes_inverse_depth():
    depth = 1.0 + torch.rand(2, 6, 8, generator=torch.Generator().manual_seed(0))
    d = geo.depth_from_geometry(da3_mono_packet(depth, "small"))
    assert d.kind == "relative" and d.model == "DA3 (mono)" and d.intrinsics is None
    torch.testing.assert_close(d.values, 1.0 / depth)  # depth, not disparity: inverted into our relative kind
    assert bool((d.nearness()[0, 0, 0] > d.nearness()[0, 0, 1]) == (depth[0, 0, 0] < depth[0, 0, 1]))


def test_da3_metric_variant_is_metres_when_told():
    depth = 1.0 + 4.0 * torch.rand(1, 6, 8)
    packet = da3_mono_packet(depth, "metric")
    assert geo.depth_from_geometry(packet).kind == "relative"  # the packet cannot tell Metric from Mono
    d = geo.depth_from_geometry(packet, kind="metric")
    assert d.kind == "metric" and d.units == "m"
    torch.testing.assert_close(d.values, depth)


def test_da3_multiview_pixel_intrinsics_become_normalised():
    h, w = 12, 16
    f_px = 20.0
    k_px = torch.tensor([[f_px, 0, (w - 1) / 2], [0, f_px, (h - 1) / 2], [0, 0, 1.0]])
    depth = 2.0 + torch.rand(2, h, w)
    d = geo.depth_from_geometry(da3_multiview_packet(depth, k_px[None, None].expand(1, 2, 3, 3)))
    assert d.model == "DA3 (multiview)" and d.intrinsics.shape == (2, 3, 3)
    torch.testing.assert_close(d.intrinsics[1], torch.tensor([[f_px / w, 0, 0.5], [0, f_px / h, 0.5], [0, 0, 1.0]]))
    # the same rays as core's _da3_unproject (pixel-space K^-1 at integer pixel coordinates)
    u, v = torch.meshgrid(torch.arange(w, dtype=torch.float32), torch.arange(h, dtype=torch.float32), indexing="xy")
    core_rays = torch.einsum("ij,hwj->hwi", torch.linalg.inv(k_px), torch.stack([u, v, torch.ones_like(u)], -1))
    ours = geo.backproject(torch.ones(1, h, w), d.intrinsics[1])[0]
    torch.testing.assert_close(ours, core_rays, rtol=1e-5, atol=1e-6)


def test_da3_identity_cameras_are_ignored():
    d = geo.depth_from_geometry(da3_multiview_packet(2.0 + torch.rand(2, 6, 8), None))
    assert d.intrinsics is None  # the placeholder identity is not a camera: the fov input is used


def test_moge2_packet_is_metric_with_its_camera_and_sky_far():
    depth = 1.0 + torch.rand(1, 10, 14)
    depth[0, :2] = float("nan")  # what the mask drops (sky), inf in the packet
    packet = moge_packet(depth, fov_x=70.0)
    d = geo.depth_from_geometry(packet)
    assert d.kind == "metric" and d.model == "MoGe"
    assert geo.fov_from_intrinsics(d.intrinsics[0]) == pytest.approx(70.0, abs=1e-3)
    assert bool(torch.isinf(d.values[0, :2]).all())  # masked sky: infinitely far
    torch.testing.assert_close(d.values[0, 2:], depth[0, 2:])
    # the mesh of the converted depth lies on core's own point map
    mesh = geo.depth_to_mesh(d, discontinuity=0.0)
    pts = packet["points"][0][2:].reshape(-1, 3) * torch.tensor([1.0, -1.0, -1.0])
    torch.testing.assert_close(mesh.vertices, pts, rtol=1e-5, atol=1e-5)


def test_moge_without_normals_is_relative_and_panorama_has_no_camera():
    depth = 1.0 + torch.rand(1, 8, 8)
    d = geo.depth_from_geometry(moge_packet(depth, normals=False))
    assert d.kind == "relative" and d.intrinsics is not None
    assert geo.depth_from_geometry(moge_packet(depth, normals=False), kind="metric").kind == "metric"
    pano = {"points": torch.rand(1, 8, 16, 3), "depth": 1 + torch.rand(1, 8, 16), "mask": torch.ones(1, 8, 16).bool()}
    pano["image"] = torch.rand(1, 8, 16, 3)
    p = geo.depth_from_geometry(pano)
    assert p.model == "MoGe (panorama)" and p.intrinsics is None and p.kind == "relative"


def test_relative_sky_is_zero_inverse_depth_and_bad_pixels_nan():
    depth = torch.tensor([[[1.0, 2.0, float("inf"), 0.0, -1.0, float("nan")]]])
    d = geo.depth_from_geometry(da3_mono_packet(depth))
    v = d.values[0, 0]
    assert v[:3].tolist() == [1.0, 0.5, 0.0]
    assert bool(torch.isnan(v[3:]).all())


def test_depthmap_camera_follows_slices():
    k = torch.stack([geo.intrinsics_from_fov(f, 8, 6) for f in (30.0, 60.0, 90.0)])
    d = DepthMap(torch.ones(3, 6, 8), "metric", intrinsics=k)
    assert torch.equal(d[1].intrinsics[0], k[1])
    assert torch.equal(d[1:].intrinsics, k[1:])
    assert d.with_values(torch.ones(2, 6, 8)).intrinsics is None  # which two maps? unknown: no camera
    assert torch.equal(d.with_values(torch.zeros(3, 6, 8)).intrinsics, k)
    with pytest.raises(ValueError, match="intrinsics"):
        DepthMap(torch.ones(3, 6, 8), intrinsics=torch.eye(3))


def test_da3_sky_is_infinitely_far_like_moge_masked_sky():
    depth = 1.0 + torch.rand(1, 6, 8)
    packet = da3_mono_packet(depth, "metric")
    packet["sky"][0, :2] = 0.9  # the top two rows are sky
    relative = geo.depth_from_geometry(packet)
    assert bool((relative.values[0, :2] == 0).all())  # zero inverse depth = infinitely far
    torch.testing.assert_close(relative.values[0, 2:], 1.0 / depth[0, 2:])
    metric = geo.depth_from_geometry(packet, kind="metric")
    assert bool(torch.isinf(metric.values[0, :2]).all())
    mesh = geo.depth_to_mesh(metric, discontinuity=0.0)
    assert mesh.vertices.shape[0] == 4 * 8  # the sky rows are left out, as core's DA3 mesh node leaves them
