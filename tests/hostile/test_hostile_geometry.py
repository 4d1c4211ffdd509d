"""Bad input at the geometry boundaries: core DA3/MoGe packets, meshes, cameras and EXIF. Every case ends in a
clear ValueError naming the problem and what to do (or a documented fallback), never a traceback from deep
inside, a silent wrong output or a half-written file. Engine cases need no ComfyUI; node cases run in-process.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from PIL import Image

from comfy_harness import NODE_IDS, comfy_inprocess  # noqa: F401 - the in-process ComfyUI fixture
from dav2_core import geometry as geo
from dav2_core.depth import DepthMap


def da3(depth) -> dict:
    """A DA3Inference mono packet around ``depth`` (as core builds it)."""
    shape = getattr(depth, "shape", (1, 4, 4))
    return {"depth": depth, "image": torch.rand(*shape, 3), "mode": "mono", "confidence": torch.ones(*shape)}


def moge(depth: torch.Tensor) -> dict:
    b, h, w = depth.shape
    k = torch.tensor([[0.9, 0.0, 0.5], [0.0, 0.9 * w / h, 0.5], [0.0, 0.0, 1.0]]).expand(b, 3, 3).clone()
    return {"image": torch.rand(b, h, w, 3), "depth": depth, "intrinsics": k, "mask": torch.isfinite(depth)}


# ------------------------------------------------------------------------------------------ packets


def test_packet_without_depth():
    with pytest.raises(ValueError, match=r"DA3 geometry has no 'depth' \(it holds image, mode, confidence\)"):
        geo.depth_from_geometry({"image": torch.rand(1, 4, 4, 3), "mode": "mono", "confidence": torch.ones(1, 4, 4)})
    with pytest.raises(ValueError, match="MoGe geometry has no 'depth'.*Run MoGe Inference"):
        geo.depth_from_geometry({"image": torch.rand(1, 4, 4, 3), "points": torch.rand(1, 4, 4, 3)})


@pytest.mark.parametrize(
    "depth",
    [np.ones((1, 4, 4), np.float32), torch.ones(4, 4), torch.ones(1, 4, 4, 1), torch.ones(0, 4, 4), "depth", None],
    ids=["numpy", "2d", "4d", "empty", "string", "none"],
)
def test_packet_with_a_malformed_depth(depth):
    with pytest.raises(ValueError, match="depth"):
        geo.depth_from_geometry(da3(depth))


@pytest.mark.parametrize("fill", [float("nan"), float("inf"), float("-inf"), 0.0, -2.0])
def test_packet_whose_depth_has_no_valid_pixel(fill):
    depth = torch.full((2, 4, 4), 1.5)
    depth[1] = fill
    with pytest.raises(ValueError, match="depth map 1 has no valid pixel"):
        geo.depth_from_geometry(da3(depth))


def test_nan_inf_and_zero_pixels_are_no_depth_or_far_never_numbers():
    depth = torch.full((1, 3, 4), 2.0)
    depth[0, 0, :4] = torch.tensor([float("nan"), float("inf"), 0.0, float("-inf")])
    metric = geo.depth_from_geometry(moge(depth), kind="metric").values[0, 0]
    assert torch.isnan(metric[0]) and metric[1] == float("inf") and torch.isnan(metric[2]) and torch.isnan(metric[3])
    relative = geo.depth_from_geometry(da3(depth)).values[0, 0]
    assert torch.isnan(relative[0]) and relative[1] == 0.0 and torch.isnan(relative[2]) and torch.isnan(relative[3])


def test_bad_intrinsics_in_a_packet_fall_back_to_the_fov():
    depth = torch.full((1, 4, 6), 2.0)
    for k in (torch.full((1, 3, 3), float("nan")), torch.zeros(1, 3, 3), torch.ones(2, 3, 3), torch.ones(3)):
        packet = moge(depth)
        packet["intrinsics"] = k
        assert geo.depth_from_geometry(packet).intrinsics is None


@pytest.mark.parametrize("kind", ["metres", "", None])
def test_unknown_kind(kind):
    with pytest.raises(ValueError, match="kind must be one of auto, metric, relative"):
        geo.depth_from_geometry(da3(torch.ones(1, 4, 4)), kind=kind)


def test_not_a_packet():
    with pytest.raises(ValueError, match="dict of tensors, got Tensor"):
        geo.depth_from_geometry(torch.ones(1, 4, 4))


# --------------------------------------------------------------------------------------------- mesh


def test_mesh_of_a_1x1_depth():
    with pytest.raises(ValueError, match="at least 2x2 pixels, got 1x1"):
        geo.depth_to_mesh(DepthMap(torch.ones(1, 1, 1), "metric"))
    with pytest.raises(ValueError, match="at least 2x2 pixels, got 5x1"):
        geo.depth_to_mesh(DepthMap(torch.ones(1, 1, 5), "metric"))


@pytest.mark.parametrize("fill", [float("nan"), 0.0, -1.0, float("inf")])
def test_mesh_of_an_all_invalid_depth(fill):
    with pytest.raises(ValueError, match="no valid pixel"):
        geo.depth_to_mesh(DepthMap(torch.full((1, 4, 4), fill), "metric"))


def test_mesh_that_the_cut_empties_says_what_to_change():
    checker = torch.ones(1, 6, 6)
    checker[0, ::2, ::2] = 5.0
    checker[0, 1::2, 1::2] = 5.0
    with pytest.raises(ValueError, match="mesh is empty.*raise discontinuity"):
        geo.depth_to_mesh(DepthMap(checker, "metric"))
    assert geo.depth_to_mesh(DepthMap(checker, "metric"), discontinuity=0.0).faces.shape[0] == 50


@pytest.mark.parametrize("decimation", [10**9, 4, 0, -1, 1.5, True, "2", float("nan")])
def test_huge_or_malformed_decimation(decimation):
    with pytest.raises(ValueError, match="decimation"):
        geo.depth_to_mesh(DepthMap(torch.ones(1, 4, 7), "metric"), decimation=decimation)


def test_the_largest_decimation_the_error_names_works():
    depth = DepthMap(torch.ones(1, 4, 7), "metric")
    with pytest.raises(ValueError, match="use at most 3"):
        geo.depth_to_mesh(depth, decimation=4)
    assert geo.depth_to_mesh(depth, decimation=3).vertices.shape[0] == 2 * 3


@pytest.mark.parametrize("cut", [-0.1, float("nan"), float("inf") * -1, "0.04"])
def test_bad_discontinuity(cut):
    with pytest.raises(ValueError, match="discontinuity"):
        geo.depth_to_mesh(DepthMap(torch.ones(1, 4, 4), "metric"), discontinuity=cut)


def test_mesh_of_a_batch_or_with_a_bad_texture():
    with pytest.raises(ValueError, match="one depth map, got 2"):
        geo.depth_to_mesh(DepthMap(torch.ones(2, 4, 4), "metric"))
    with pytest.raises(ValueError, match="one texture image, got 2"):
        geo.depth_to_mesh(DepthMap(torch.ones(1, 4, 4), "metric"), torch.rand(2, 4, 4, 3))
    with pytest.raises(ValueError, match="image"):
        geo.depth_to_mesh(DepthMap(torch.ones(1, 4, 4), "metric"), torch.rand(1, 1, 4, 4, 3))  # 5-D
    with pytest.raises(ValueError, match="DepthMap"):
        geo.depth_to_mesh(torch.ones(1, 4, 4))


def test_glb_is_never_half_written(tmp_path, monkeypatch):
    trimesh = pytest.importorskip("trimesh")
    mesh = geo.depth_to_mesh(DepthMap(torch.ones(1, 4, 4), "metric"))
    target = tmp_path / "m.glb"
    target.write_bytes(b"old")

    def broken(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(trimesh.Trimesh, "export", broken)
    with pytest.raises(OSError, match="disk full"):
        geo.write_glb(target, mesh)
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["m.glb"]


# --------------------------------------------------------------------------------------------- EXIF


def test_exif_without_focal_length(tmp_path):
    Image.new("RGB", (8, 6)).save(tmp_path / "plain.jpg")
    assert geo.exif_fov(tmp_path / "plain.jpg") == (None, "no focal length in the photo's EXIF")
    image = Image.new("RGB", (8, 6))
    exif = image.getexif()
    exif.get_ifd(0x8769)[0x920A] = 5.0
    image.save(tmp_path / "focal.jpg", exif=exif)
    fov, why = geo.exif_fov(tmp_path / "focal.jpg")
    assert fov is None and "no 35 mm equivalent or sensor size" in why


@pytest.mark.parametrize("value", [0, -26, float("nan"), float("inf")])
def test_exif_with_an_absurd_focal_length(tmp_path, value):
    image = Image.new("RGB", (8, 6))
    exif = image.getexif()
    exif.get_ifd(0x8769)[0xA405] = value
    try:
        image.save(tmp_path / "x.tiff", exif=exif)
    except (ValueError, OSError, TypeError):
        pytest.skip(f"PIL cannot even write a focal length of {value}")
    fov, why = geo.exif_fov(tmp_path / "x.tiff")
    assert fov is None and "no focal length" in why


def test_exif_of_a_file_that_is_no_image(tmp_path):
    (tmp_path / "fake.jpg").write_bytes(b"\xff\xd8\xff\xe1 not really a jpeg")
    fov, why = geo.exif_fov(tmp_path / "fake.jpg")
    assert fov is None and why.startswith("could not read the photo's EXIF")
    fov, why = geo.exif_fov(tmp_path / "missing.jpg")
    assert fov is None and "could not read" in why


# -------------------------------------------------------------------------------------------- nodes


def test_a_packet_without_depth_into_our_nodes(comfy_inprocess):
    packet = da3(torch.ones(1, 4, 4))
    del packet["depth"]
    for name, args in (("Depth Stats", (0,)), ("Save Depth", ("x/y", "npy"))):
        with pytest.raises(ValueError, match="'depth': the DA3 geometry has no 'depth'"):
            comfy_inprocess.node(name).execute(packet, *args)
    with pytest.raises(ValueError, match="no 'depth'"):
        comfy_inprocess.node("Colorize Depth").execute(packet, "viridis", False, "min_max", 0.0, 1.0)


def test_a_mesh_wired_into_a_depth_input_is_named(comfy_inprocess):
    class MESH:  # what core's MESH type carries
        vertices = torch.zeros(1, 3, 3)
        faces = torch.zeros(1, 1, 3, dtype=torch.long)

    with pytest.raises(ValueError, match="must be a DEPTH.*got MESH"):
        comfy_inprocess.node("Depth Stats").execute(MESH(), 0)


def test_depth_to_mesh_batch_index_past_the_end(comfy_inprocess):
    api = sys.modules[f"{comfy_inprocess.module.__name__}.nodes.api"]
    if not api.HAS_MESH:
        pytest.skip("no MESH type in this ComfyUI")
    to_mesh = comfy_inprocess.node("Depth to Mesh")
    depth = DepthMap(torch.full((2, 4, 4), 2.0), "metric")
    with pytest.raises(ValueError, match="batch_index 2 is outside the batch of 2 depth map"):
        to_mesh.execute(depth, 2, 60.0, True, 1, 0.04)
    with pytest.raises(ValueError, match="image batch has 3 images but depth batch has 2"):
        to_mesh.execute(depth, 0, 60.0, True, 1, 0.04, image=torch.rand(3, 4, 4, 3))
    with pytest.raises(ValueError, match="decimation 64 leaves a 1x1 vertex grid"):
        to_mesh.execute(depth, 0, 60.0, True, 64, 0.04)
    with pytest.raises(ValueError, match="no valid pixel"):
        to_mesh.execute(da3(torch.full((1, 4, 4), float("nan"))), 0, 60.0, True, 1, 0.04)


def test_without_mesh_type_depth_to_mesh_is_absent_and_the_rest_intact(comfy_inprocess):
    """A ComfyUI without core's MESH type: the node is not offered (a saved workflow using it then shows as a
    missing node, ComfyUI's own handling), every other node still builds its schema."""
    pack = sys.modules[f"{comfy_inprocess.module.__name__}.nodes"]
    without = pack.available_nodes(has_mesh=False)
    ids = [n.GET_SCHEMA().node_id for n in without]
    assert NODE_IDS["Depth to Mesh"] not in ids
    assert ids == [n.GET_SCHEMA().node_id for n in pack.available_nodes(has_mesh=True) if n.__name__ != "DepthToMesh"]


def test_a_panorama_is_refused_where_a_pinhole_camera_is_needed():
    pano = {"points": torch.rand(1, 8, 16, 3), "depth": 1 + torch.rand(1, 8, 16), "image": torch.rand(1, 8, 16, 3)}
    depth = geo.depth_from_geometry(pano)  # colour, stats and files are fine
    with pytest.raises(ValueError, match="panorama.*Convert MoGe Point Map to Mesh"):
        geo.depth_to_mesh(depth)
    from dav2_core.effects import depth_to_normals

    with pytest.raises(ValueError, match="panorama"):
        depth_to_normals(depth)
