"""Core geometry in and out, in-process on ComfyUI's real modules: DA3/MoGe-shaped packets (built as ComfyUI
0.33's nodes build them) into our depth nodes, Depth to Mesh into core's SaveGLB, Depth to Normals' point
cloud. Runs on whichever ComfyUI the harness loads (COMFYUI_DIR): on 0.3.75 the geometry inputs and the
point-cloud output are absent and the mesh is untextured; on 0.33 they are there.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from comfy_harness import NODE_IDS
from dav2_core.depth import DepthMap

H, W = 24, 32


@pytest.fixture(scope="module")
def api(comfy_inprocess):
    return sys.modules[f"{comfy_inprocess.module.__name__}.nodes.api"]


@pytest.fixture(scope="module")
def pack_types(comfy_inprocess):
    return sys.modules[f"{comfy_inprocess.module.__name__}.nodes.types"]


def scene() -> torch.Tensor:
    """[1,H,W] depth in metres: a tilted wall 2..3 m with a box at 1 m."""
    z = (2.0 + torch.linspace(0, 1, W)[None, None, :].expand(1, H, W)).clone()
    z[0, 8:16, 10:20] = 1.0
    return z


def da3_packet(depth: torch.Tensor) -> dict:
    """DA3Inference mono output of a Small/Base model (depth, image, mode, confidence)."""
    b, h, w = depth.shape
    return {"depth": depth, "image": torch.rand(b, h, w, 3), "mode": "mono", "confidence": torch.ones(b, h, w)}


def moge_packet(depth: torch.Tensor) -> dict:
    """MoGeInference output of a MoGe-2 normal checkpoint (metric), 60 degrees horizontal field of view."""
    b, h, w = depth.shape
    fx = 0.5 / np.tan(np.radians(30))
    k = torch.tensor([[fx, 0, 0.5], [0, fx * w / h, 0.5], [0, 0, 1.0]]).expand(b, 3, 3).clone()
    return {
        "image": torch.rand(b, h, w, 3),
        "points": torch.rand(b, h, w, 3),
        "depth": depth,
        "intrinsics": k,
        "mask": torch.ones(b, h, w, dtype=torch.bool),
        "normal": torch.nn.functional.normalize(torch.rand(b, h, w, 3), dim=-1),
    }


def node(comfy, name: str):
    return comfy.node(name)


def test_depth_inputs_take_core_geometry_only_where_comfyui_has_it(api, pack_types, comfy_inprocess):
    stats = node(comfy_inprocess, "Depth Stats").GET_SCHEMA().inputs[0]
    colorize = node(comfy_inprocess, "Colorize Depth").GET_SCHEMA().inputs[0]
    expected = ",".join(("DEPTH", *api.CORE_GEOMETRY_TYPES))
    assert stats.get_io_type() == expected
    assert colorize.get_io_type() == ",".join(("DEPTH", "IMAGE", *api.CORE_GEOMETRY_TYPES))
    core_has_moge = (comfy_inprocess.comfyui_dir / "comfy_extras" / "nodes_moge.py").is_file()
    assert ("MOGE_GEOMETRY" in api.CORE_GEOMETRY_TYPES) == core_has_moge


def test_the_depth_input_helper_declares_the_geometry_union(pack_types, monkeypatch, comfy_inprocess):
    """What the nodes declare on a ComfyUI with core's DA3/MoGe nodes (simulated on any version)."""
    io = sys.modules[f"{comfy_inprocess.module.__name__}.nodes.api"].io
    monkeypatch.setattr(pack_types, "GEOMETRY_IO", [io.Custom("DA3_GEOMETRY"), io.Custom("MOGE_GEOMETRY")])
    monkeypatch.setattr(pack_types, "GEOMETRY_NOTE", "; or core geometry")
    plain = pack_types.depth_input("depth", tooltip="DEPTH")
    assert plain.get_io_type() == "DEPTH,DA3_GEOMETRY,MOGE_GEOMETRY"
    assert plain.as_dict()["tooltip"] == "DEPTH; or core geometry"
    with_image = pack_types.depth_input("depth", tooltip="x", image=True, optional=True)
    assert with_image.get_io_type() == "DEPTH,IMAGE,DA3_GEOMETRY,MOGE_GEOMETRY" and with_image.optional


def test_da3_geometry_into_stats_save_depth_and_bokeh(comfy_inprocess):
    depth = scene()
    packet = da3_packet(depth)
    out = node(comfy_inprocess, "Depth Stats").execute(packet, 0)
    assert out.args[0].startswith("Depth stats - units: relative (inverse depth) - model: DA3 (mono)")
    assert "min 0.3333  max 1 " in out.args[0]  # 1 / 3 m .. 1 / 1 m
    # relative: 1 / depth, so the box (1 m) is the largest value
    saved = node(comfy_inprocess, "Save Depth").execute(packet, "geo/da3", "npy")
    entry = next(f for f in saved.ui["depth_files"] if f["filename"].endswith(".npy"))
    folder = comfy_inprocess.base_dir / "output" / entry["subfolder"]
    np.testing.assert_allclose(np.load(folder / entry["filename"])[0], (1.0 / depth[0]).numpy(), rtol=1e-6)
    meta = json.loads((folder / (entry["filename"] + ".json")).read_text())
    assert meta["kind"] == "relative" and meta["model"] == "DA3 (mono)"
    image = torch.rand(1, H, W, 3)
    blurred = node(comfy_inprocess, "Depth Bokeh").execute(image, packet, "point", 0.45, 0.5, 1.0, 4.0, 0.1, 5)
    result = blurred.args[0]
    assert result.shape == image.shape
    # in focus on the box (the point 0.45, 0.5 lies on it): the box stays sharp, the wall is blurred
    assert float((result[0, 10:14, 12:18] - image[0, 10:14, 12:18]).abs().max()) < 0.05
    assert float((result[0, :, 26:] - image[0, :, 26:]).abs().mean()) > 0.02


def test_moge_geometry_is_metres_in_colorize_and_stats(comfy_inprocess):
    packet = moge_packet(scene())
    stats = node(comfy_inprocess, "Depth Stats").execute(packet, 0).args[0]
    assert stats.startswith("Depth stats - units: m - model: MoGe")
    assert "min 1 m  max 3 m" in stats
    coloured = node(comfy_inprocess, "Colorize Depth").execute(packet, "viridis", False, "min_max", 0.0, 1.0)
    assert coloured.args[0].shape == (1, H, W, 3)
    preview = coloured.ui["dav2_depth"][0]
    assert preview["units"] == "m" and preview["kind"] == "metric"


def test_geometry_without_depth_is_a_clear_error(comfy_inprocess):
    packet = da3_packet(scene())
    del packet["depth"]
    with pytest.raises(ValueError, match="no 'depth'.*Run Depth Anything 3"):
        node(comfy_inprocess, "Depth Stats").execute(packet, 0)


def mesh_node(comfy_inprocess, api):
    if not api.HAS_MESH:
        assert NODE_IDS["Depth to Mesh"] not in comfy_inprocess.nodes.NODE_CLASS_MAPPINGS
        pytest.skip("this ComfyUI has no MESH type: Depth to Mesh is not offered (checked)")
    return node(comfy_inprocess, "Depth to Mesh")


def core_save_glb(monkeypatch):
    """Core's SaveGLB node class (0.33: comfy_extras.nodes_save_3d; 0.3.75: nodes_hunyuan3d), called directly
    (no prompt metadata: ComfyUI's executor sets that)."""
    import importlib

    from comfy.cli_args import args

    monkeypatch.setattr(args, "disable_metadata", True)
    for name in ("comfy_extras.nodes_save_3d", "comfy_extras.nodes_hunyuan3d"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(module, "SaveGLB"):
            return module.SaveGLB
    pytest.fail("this ComfyUI has a MESH type but no SaveGLB node")


def test_depth_to_mesh_into_core_save_glb(api, comfy_inprocess, monkeypatch):
    trimesh = pytest.importorskip("trimesh")
    to_mesh = mesh_node(comfy_inprocess, api)
    image = torch.rand(1, H, W, 3)
    depth = DepthMap(scene(), "metric", model="test")
    mesh = to_mesh.execute(depth, 0, 60.0, True, 2, 0.04, image=image).args[0]
    n_vertices = mesh.vertices.shape[1]
    assert mesh.vertices.shape[0] == 1 and n_vertices > 0
    assert (getattr(mesh, "texture", None) is not None) == api.MESH_HAS_TEXTURE
    result = core_save_glb(monkeypatch).execute(mesh, "geo/mesh")
    entry = result.ui["3d"][0]
    path = comfy_inprocess.base_dir / "output" / entry["subfolder"] / entry["filename"]
    loaded = trimesh.load(path, force="mesh", process=False)
    assert len(loaded.vertices) == n_vertices  # a glTF loader reads back every vertex
    assert len(loaded.faces) == mesh.faces.shape[1]
    # metres: the box at 1 m and the wall up to 3 m (glTF: -z is depth)
    depths = -np.asarray(loaded.vertices)[:, 2]
    assert float(depths.min()) == pytest.approx(1.0, abs=1e-4)
    assert float(depths.max()) == pytest.approx(2.0 + 30 / 31, abs=1e-4)  # the last even column of the wall


def test_depth_to_mesh_takes_the_moge_camera(api, comfy_inprocess):
    to_mesh = mesh_node(comfy_inprocess, api)
    packet = moge_packet(torch.full((1, H, W), 2.0))
    packet["intrinsics"][:, 0, 0] = 0.5 / np.tan(np.radians(15))  # a 30 degree lens in the packet
    packet["intrinsics"][:, 1, 1] = packet["intrinsics"][:, 0, 0] * W / H
    narrow = to_mesh.execute(packet, 0, 90.0, True, 1, 0.0).args[0]
    wide = to_mesh.execute(packet, 0, 90.0, False, 1, 0.0).args[0]
    half = lambda m: float(m.vertices[0, :, 0].abs().max())
    assert half(narrow) == pytest.approx(2.0 * np.tan(np.radians(15)) * (W - 1) / W, rel=1e-4)
    assert half(wide) == pytest.approx(2.0 * np.tan(np.radians(45)) * (W - 1) / W, rel=1e-4)


def test_depth_to_normals_point_cloud_output_only_where_core_has_the_type(api, comfy_inprocess):
    normals = node(comfy_inprocess, "Depth to Normals")
    names = [o.display_name for o in normals.GET_SCHEMA().outputs]
    assert ("point_cloud" in names) == api.HAS_POINT_CLOUD
    out = normals.execute(DepthMap(scene(), "metric"), 60.0, False, "pc/x", 2)
    assert len(out.args) == (3 if api.HAS_POINT_CLOUD else 2)
    load_3d = comfy_inprocess.comfyui_dir / "comfy_extras" / "nodes_load_3d.py"
    assert api.HAS_POINT_CLOUD == ("class PreviewPointCloud" in load_3d.read_text(encoding="utf-8"))
    if api.HAS_POINT_CLOUD:
        cloud = out.args[2]
        data = cloud.get_data().read()
        assert data.startswith(b"ply\n") and b"element vertex 192\n" in data  # 24x32 / stride 2 squared
        import importlib

        preview = importlib.import_module("comfy_extras.nodes_load_3d").PreviewPointCloud
        shown = preview.execute(model_3d=cloud, viewport_state={}, width=64, height=64)
        name = shown.ui.as_dict()["result"][0]  # the file core's 3D viewer loads, in the temp folder
        path = comfy_inprocess.base_dir / "temp" / name
        trimesh = pytest.importorskip("trimesh")
        assert len(trimesh.load(path, process=False).vertices) == 192  # core's viewer gets our cloud


def pack_module(comfy_inprocess, name: str):
    return sys.modules[f"{comfy_inprocess.module.__name__}.nodes.{name}"]


def test_core_geometry_to_depth_sets_units_and_hands_on_image_and_fov(api, comfy_inprocess):
    cls = pack_module(comfy_inprocess, "geometry").GeometryToDepth
    registered = NODE_IDS["Core Geometry to Depth"] in comfy_inprocess.nodes.NODE_CLASS_MAPPINGS
    assert registered == bool(api.CORE_GEOMETRY_TYPES)  # offered only where core makes such packets
    depth = scene()
    packet = da3_packet(depth)
    metric, image, fov = cls.execute(packet, "metric").args
    assert metric.kind == "metric" and torch.equal(metric.values, depth) and fov == 60.0
    assert torch.equal(image.cpu(), packet["image"])
    relative = cls.execute(packet, "auto").args[0]
    torch.testing.assert_close(relative.values, 1.0 / depth)
    moge_fov = cls.execute(moge_packet(depth), "auto").args[2]
    assert moge_fov == pytest.approx(60.0, abs=1e-4)
    with pytest.raises(ValueError, match="must be core's DA3_GEOMETRY or MOGE_GEOMETRY, got DepthMap"):
        cls.execute(DepthMap(depth), "auto")


def exif_photo(path, f35=None):
    from PIL import Image

    image = Image.new("RGB", (64, 48), (100, 120, 140))
    exif = image.getexif()
    if f35 is not None:
        exif.get_ifd(0x8769)[0xA405] = f35
    image.save(path, exif=exif)


def test_camera_from_photo_exif(comfy_inprocess):
    cam = node(comfy_inprocess, "Camera from Photo EXIF")
    folder = comfy_inprocess.base_dir / "input"
    folder.mkdir(exist_ok=True)
    exif_photo(folder / "phone.jpg", f35=26)
    exif_photo(folder / "scan.jpg")
    fov, info = cam.execute("phone.jpg", 60.0).args
    f_px = 26 / 43.26661530556787 * np.hypot(64, 48)
    assert fov == pytest.approx(np.degrees(2 * np.arctan(32 / f_px)), rel=1e-6) and "35 mm" in info
    fov, info = cam.execute("scan.jpg", 55.0).args
    assert fov == 55.0 and info == "no focal length in the photo's EXIF: using fallback_fov 55 degrees"
    assert cam.validate_inputs("phone.jpg") is True
    for bad in ("../../etc/passwd", "missing.jpg", "", "a\x00b"):
        assert isinstance(cam.validate_inputs(bad), str)
        with pytest.raises(ValueError, match="photo"):
            cam.execute(bad, 60.0)
    assert "phone.jpg" in [o for o in cam.GET_SCHEMA().inputs[0].options]


def test_moge_sky_flows_through_every_depth_node(comfy_inprocess):
    """MoGe's masked sky (+inf metres) reaches Colorize, Stats, Save Depth, Bokeh, Parallax and Normals as
    'infinitely far': no crash, no NaN in images; png16 (which cannot hold inf) says to use exr or npy."""
    depth = scene()
    depth[0, :6] = float("inf")  # the top rows are sky
    packet = moge_packet(depth)
    image = torch.rand(1, H, W, 3)
    coloured = node(comfy_inprocess, "Colorize Depth").execute(packet, "viridis", False, "min_max", 0.0, 1.0).args[0]
    assert bool(torch.isfinite(coloured).all())
    stats = node(comfy_inprocess, "Depth Stats").execute(packet, 0).args[0]
    assert f"valid {(H - 6) * W} / {H * W} px" in stats
    saved = node(comfy_inprocess, "Save Depth").execute(packet, "geo/sky", "npy")
    assert saved.ui["depth_files"]
    with pytest.raises(ValueError, match="16-bit PNG cannot hold.*exr or npy"):
        node(comfy_inprocess, "Save Depth").execute(packet, "geo/sky", "png16")
    blurred = node(comfy_inprocess, "Depth Bokeh").execute(image, packet, "point", 0.5, 0.9, 1.0, 3.0, 0.1, 5)
    assert bool(torch.isfinite(blurred.args[0]).all())
    frames = node(comfy_inprocess, "Depth Parallax").execute(image, packet, 2, "zoom_in", 0.5).args[0]
    assert frames.shape[0] == 2 and bool(torch.isfinite(frames).all())
    normals = node(comfy_inprocess, "Depth to Normals").execute(packet, 60.0, False, "pc/sky", 1).args[0]
    assert bool(torch.isfinite(normals).all())
    assert torch.allclose(normals[0, 0, 0], torch.tensor([0.5, 0.5, 1.0]))  # no depth: the camera-facing normal
