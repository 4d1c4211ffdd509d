"""The effect nodes (bokeh, parallax, calibration, Save Depth, normals) and Estimate Depth's quality options,
run in-process on ComfyUI's real modules (the pack loaded like ComfyUI loads custom nodes).

Scenes are constructed so the expected result is known: planes at known depths, known scale/shift,
known normals. Images are tiny (2 shared CPU cores) and torch runs single-threaded here.
"""

from __future__ import annotations

import math
import sys
import warnings

import numpy as np
import pytest
import torch

from comfy_harness import NODE_IDS, TEST_CHECKPOINT
from dav2_core.depth import DepthMap
from dav2_core.effects import FORMATS, MOTIONS, export, flicker_metric, load_depth
from dav2_core.inference import predict_depth

H, W = 48, 72
SIZE = 28  # network input size (multiple of 14) for the Estimate Depth runs


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny tensors: one thread is fastest


def node(comfy, display: str):
    return comfy.node(display)


def texture(h: int = H, w: int = W, b: int = 1, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (0.2 + 0.6 * torch.rand(b, h, w, 3, generator=g)).float()


def three_planes(h: int = H, w: int = W) -> DepthMap:
    """Relative depth: left third far (1.0), middle third 2.0, right third near (3.0)."""
    v = torch.ones(1, h, w)
    v[:, :, w // 3 : 2 * w // 3] = 2.0
    v[:, :, 2 * w // 3 :] = 3.0
    return DepthMap(v, kind="relative", model="test")


def bokeh(comfy, image, depth, **kw):
    args = dict(
        focus_mode="point", focus_x=0.5, focus_y=0.5, focus_depth=1.0, max_blur_radius=5.0, focus_range=0.1, layers=9
    )
    args.update(kw)
    return node(comfy, "Depth Bokeh").execute(image, depth, **args)


def output_files(comfy) -> set:
    root = comfy.base_dir / "output"
    return {p.relative_to(root) for p in root.rglob("*") if p.is_file()}


# ------------------------------------------------------------------------------------ schemas


@pytest.mark.parametrize(
    "display",
    ["Depth Bokeh", "Depth Parallax", "Calibrate Depth to Metric", "Save Depth", "Depth to Normals", "Estimate Depth"],
)
def test_every_input_and_output_has_a_tooltip(comfy_inprocess, display):
    schema = node(comfy_inprocess, display).GET_SCHEMA()
    assert schema.node_id == NODE_IDS[display] and schema.category == "depth/Depth Anything V2"
    assert len(schema.description) > 80
    for item in schema.inputs + schema.outputs:
        assert item.tooltip and len(item.tooltip) > 15, f"{display}: {item.id} has no useful tooltip"


def test_combos_are_the_engine_lists(comfy_inprocess):
    from dav2_core.effects.parallax import MOTION_HELP

    parallax = {i.id: i for i in node(comfy_inprocess, "Depth Parallax").GET_SCHEMA().inputs}
    assert parallax["motion"].options == list(MOTIONS)
    assert all(text in parallax["motion"].tooltip for text in MOTION_HELP.values())
    assert parallax["frames"].min == 1
    save = {i.id: i for i in node(comfy_inprocess, "Save Depth").GET_SCHEMA().inputs}
    assert save["format"].options == list(FORMATS)
    save_module = sys.modules[node(comfy_inprocess, "Save Depth").__module__]
    assert tuple(save_module.FORMAT_HELP) == FORMATS  # the tooltip describes exactly the engine's formats
    assert node(comfy_inprocess, "Save Depth").GET_SCHEMA().is_output_node


def test_estimate_new_inputs_are_optional_with_off_defaults(comfy_inprocess):
    inputs = {i.id: i for i in node(comfy_inprocess, "Estimate Depth").GET_SCHEMA().inputs}
    expected = {"flip_tta": False, "refine": 0.0, "temporal_consistency": False, "temporal_smoothing": 1.0}
    for name, default in expected.items():
        assert inputs[name].optional and inputs[name].default == default
    assert "metric" in inputs["temporal_consistency"].tooltip  # says it is skipped for metric models


# ------------------------------------------------------------------------------------ bokeh


def test_bokeh_keeps_the_focus_plane_and_blurs_the_rest(comfy_inprocess):
    image, depth = texture(), three_planes()
    out = bokeh(comfy_inprocess, image, depth)  # point focus at the centre: the middle plane
    blurred, coc = out.args
    assert blurred.shape == image.shape and blurred.dtype == torch.float32
    assert coc.shape == (1, H, W) and coc.dtype == torch.float32
    m = 7  # clear of the plane borders (blur radius 5 px)
    mid = (0, slice(m, -m), slice(W // 3 + m, 2 * W // 3 - m))
    far = (0, slice(m, -m), slice(m, W // 3 - m))
    near = (0, slice(m, -m), slice(2 * W // 3 + m, W - m))
    torch.testing.assert_close(blurred[mid], image[mid], atol=1e-5, rtol=0)
    assert float(coc[mid].max()) == 0.0 and float(coc[far].min()) > 0.3 and float(coc[near].min()) > 0.3
    for region in (far, near):
        assert float((blurred[region] - image[region]).abs().mean()) > 0.03
        assert float(blurred[region].std()) < 0.6 * float(image[region].std())  # texture smoothed away


def test_bokeh_focus_by_depth_value(comfy_inprocess):
    image, depth = texture(), three_planes()
    blurred, coc = bokeh(comfy_inprocess, image, depth, focus_mode="depth", focus_depth=3.0).args
    near = (0, slice(7, -7), slice(2 * W // 3 + 7, W - 7))
    far = (0, slice(7, -7), slice(7, W // 3 - 7))
    torch.testing.assert_close(blurred[near], image[near], atol=1e-5, rtol=0)
    assert float(coc[near].max()) == 0.0
    assert float((blurred[far] - image[far]).abs().mean()) > 0.03


def test_bokeh_metric_focus_in_metres(comfy_inprocess):
    image = texture()
    metres = DepthMap(torch.where(three_planes().values > 1.5, 2.0, 8.0), kind="metric")
    blurred, coc = bokeh(comfy_inprocess, image, metres, focus_mode="depth", focus_depth=8.0).args
    far = (0, slice(7, -7), slice(7, W // 3 - 7))
    torch.testing.assert_close(blurred[far], image[far], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="outside the depth range"):
        bokeh(comfy_inprocess, image, metres, focus_mode="depth", focus_depth=20.0)


def test_bokeh_batches_pair_or_refuse(comfy_inprocess):
    images = texture(b=2)
    out, coc = bokeh(comfy_inprocess, images, three_planes()).args  # one depth reused for both images
    assert out.shape == images.shape and coc.shape == (2, H, W)
    torch.testing.assert_close(coc[0], coc[1])
    three = DepthMap(three_planes().values.expand(3, -1, -1).contiguous())
    with pytest.raises(ValueError, match="batch"):
        bokeh(comfy_inprocess, images, three)


def test_bokeh_depth_of_another_size_is_resized_with_a_warning(comfy_inprocess):
    small = three_planes(H // 2, W // 2)
    with pytest.warns(UserWarning, match="resiz"):
        out, coc = bokeh(comfy_inprocess, texture(), small).args
    assert out.shape == (1, H, W, 3) and coc.shape == (1, H, W)


def test_bokeh_bad_focus_and_flat_depth(comfy_inprocess):
    image, depth = texture(), three_planes()
    with pytest.raises(ValueError, match="outside the depth range"):
        bokeh(comfy_inprocess, image, depth, focus_mode="depth", focus_depth=7.0)
    with pytest.raises(ValueError, match="outside the image"):
        bokeh(comfy_inprocess, image, depth, focus_x=1.5)
    with pytest.raises(ValueError, match="focus_mode"):
        bokeh(comfy_inprocess, image, depth, focus_mode="middle")
    flat = DepthMap(torch.full((1, H, W), 4.0))
    with pytest.warns(UserWarning, match="no range"):
        out, coc = bokeh(comfy_inprocess, image, flat).args
    torch.testing.assert_close(out, image)
    assert float(coc.abs().max()) == 0.0


def test_bokeh_refuses_a_mask_where_depth_belongs(comfy_inprocess):
    with pytest.raises(ValueError, match="DEPTH"):
        bokeh(comfy_inprocess, texture(), torch.rand(1, H, W))


# ------------------------------------------------------------------------------------ parallax


def parallax(comfy, image, depth, frames=5, motion="circle", strength=0.05):
    return node(comfy, "Depth Parallax").execute(image, depth, frames, motion, strength).args[0]


@pytest.mark.parametrize("motion", MOTIONS)
def test_parallax_gives_n_frames_without_holes(comfy_inprocess, motion):
    images = texture(b=2)
    images[1] = 1.0 - images[1]  # two different images
    frames = parallax(comfy_inprocess, images, three_planes(), frames=4, motion=motion)
    assert frames.shape == (8, H, W, 3) and frames.dtype == torch.float32
    assert torch.isfinite(frames).all()
    # no holes: every pixel carries colour from the image (all of its pixels are >= 0.2, a hole would be 0)
    assert float(frames.min()) >= 0.2 - 1e-5 and float(frames.max()) <= 0.8 + 1e-5
    first, second = frames[:4], frames[4:]  # image 1's frames first, then image 2's
    assert float((first - images[0]).abs().mean()) < float((first - images[1]).abs().mean())
    assert float((second - images[1]).abs().mean()) < float((second - images[0]).abs().mean())
    moved = max(float((frames[k] - images[0]).abs().max()) for k in range(4))
    assert moved > 0.1, f"{motion}: no frame moved"


def test_parallax_near_moves_far_stays(comfy_inprocess):
    image = texture()
    frames = parallax(comfy_inprocess, image, three_planes(), frames=4, motion="swing", strength=0.05)
    far = (slice(None), slice(0, W // 3 - 6))  # relative: the farthest plane is at infinity and stays put
    near = (slice(None), slice(2 * W // 3 + 6, W))
    torch.testing.assert_close(frames[1][far], image[0][far])
    assert float((frames[1][near] - image[0][near]).abs().mean()) > 0.05


def test_parallax_frames_zero_and_bad_inputs(comfy_inprocess):
    image, depth = texture(), three_planes()
    with pytest.raises(ValueError, match="frames"):
        parallax(comfy_inprocess, image, depth, frames=0)
    assert parallax(comfy_inprocess, image, depth, frames=1).shape == (1, H, W, 3)
    with pytest.raises(ValueError, match="motion"):
        parallax(comfy_inprocess, image, depth, motion="spin")
    with pytest.raises(ValueError, match="batch"):
        parallax(comfy_inprocess, texture(b=2), DepthMap(depth.values.expand(3, -1, -1).contiguous()))
    with pytest.warns(UserWarning, match="resiz"):
        assert parallax(comfy_inprocess, image, three_planes(H // 2, W // 2), frames=2).shape == (2, H, W, 3)


def test_parallax_1000_frames_of_1080p_is_refused_up_front_naming_the_size(comfy_inprocess, monkeypatch):
    import dav2_core.chunks as chunks

    monkeypatch.setattr(chunks, "free_memory_bytes", lambda device: 16 << 30)  # a 16 GiB machine
    started = []
    monkeypatch.setattr(chunks, "run_chunked", lambda *a, **k: started.append(1))
    image, depth = torch.rand(1, 1080, 1920, 3), DepthMap(torch.rand(1, 1080, 1920))
    with pytest.raises(ValueError, match=r"1000 frames of 1920x1080 .* = 23\.2 GiB.*fewer frames or a smaller image"):
        parallax(comfy_inprocess, image, depth, frames=1000)
    assert not started


def test_parallax_progress_per_chunk_and_cancel_within_a_chunk(comfy_inprocess, monkeypatch):
    import comfy.utils

    import dav2_core.chunks as chunks

    mm = comfy_inprocess.model_management
    monkeypatch.setattr(chunks, "CPU_CHUNK_PIXELS", 2 * H * W)  # chunks of 2 frames for these tiny images
    calls = []

    def hook(value, total, preview, node_id=None):
        calls.append((value, total))
        mm.interrupt_current_processing(True)  # Cancel pressed during the first chunk

    comfy.utils.set_progress_bar_global_hook(hook)
    try:
        with pytest.raises(mm.InterruptProcessingException):
            parallax(comfy_inprocess, texture(), three_planes(), frames=40)
    finally:
        comfy.utils.set_progress_bar_global_hook(None)
        mm.interrupt_current_processing(False)
    assert calls == [(2, 40)]  # stopped after the first chunk of 2 frames, not after 40
    frames = parallax(comfy_inprocess, texture(), three_planes(), frames=6)
    assert frames.shape == (6, H, W, 3) and frames.device == mm.intermediate_device()


# ------------------------------------------------------------------------------------ calibration


def scene_relative(scale: float = 0.5, shift: float = 0.1) -> tuple[DepthMap, torch.Tensor]:
    """A relative map and the metres it stands for: 1/metres = scale * relative + shift."""
    ys = torch.linspace(0, 1, H)[:, None]
    xs = torch.linspace(0, 1, W)[None, :]
    rel = (0.2 + 1.5 * xs + 0.5 * ys * xs)[None].float()
    return DepthMap(rel, kind="relative", model="test"), 1.0 / (scale * rel + shift)


def calibrate(comfy, depth, points="", max_depth_m=1000.0, reference=None):
    out = node(comfy, "Calibrate Depth to Metric").execute(depth, points, max_depth_m, reference=reference)
    return out.args[0], out.args[1], out.ui


def test_calibration_from_points_recovers_known_scale_and_shift(comfy_inprocess):
    rel, metres = scene_relative()
    pts = [(5, 3), (60, 40), (35, 20), (70, 10)]
    text = "; ".join(f"{x},{y},{float(metres[0, y, x]):.6f}" for x, y in pts)
    metric, report, ui = calibrate(comfy_inprocess, rel, text)
    assert isinstance(metric, DepthMap) and (metric.kind, metric.units) == ("metric", "m")
    assert metric.values.shape == (1, H, W) and metric.values.dtype == torch.float32
    torch.testing.assert_close(metric.values, metres, rtol=0.01, atol=0)
    assert "scale 0.5" in report and "shift 0.1" in report and "residual RMSE" in report and "4 samples" in report
    assert ui["text"] == ui["dav2_report"] == [report]  # the report is shown on the node
    # new lines and spaces work as separators too
    again, _, _ = calibrate(comfy_inprocess, rel, "\n".join(f"{x} {y} {float(metres[0, y, x]):.6f}" for x, y in pts))
    torch.testing.assert_close(again.values, metric.values)


def test_calibration_from_a_metric_reference_depth(comfy_inprocess):
    rel, metres = scene_relative(scale=2.0, shift=0.05)
    reference = DepthMap(metres.clone(), kind="metric")
    reference.values[0, :5] = float("nan")  # invalid pixels of the reference are ignored
    metric, report, _ = calibrate(comfy_inprocess, rel, "", reference=reference)
    torch.testing.assert_close(metric.values, metres, rtol=0.01, atol=0)
    assert "reference" in report and "scale 2" in report


@pytest.mark.parametrize(
    ("points", "message"),
    [
        ("10,10,2.0", "at least two"),
        ("  ", "no reference"),
        ("100,10,2.0; 5,5,3.0", "outside the 72x48 image"),
        ("-1,10,2.0; 5,5,3.0", "outside"),
        ("10,10; 5,5,3.0", "three numbers"),
        ("10,10,two; 5,5,3.0", "three numbers"),
        ("10,10,0; 5,5,3.0", "> 0"),
    ],
)
def test_calibration_bad_points(comfy_inprocess, points: str, message: str):
    rel, _ = scene_relative()
    with pytest.raises(ValueError, match=message):
        calibrate(comfy_inprocess, rel, points)


def test_calibration_bad_reference(comfy_inprocess):
    rel, metres = scene_relative()
    reference = DepthMap(metres, kind="metric")
    with pytest.raises(ValueError, match="both"):
        calibrate(comfy_inprocess, rel, "10,10,2.0; 5,5,3.0", reference=reference)
    with pytest.raises(ValueError, match="already metric"):
        calibrate(comfy_inprocess, reference, "10,10,2.0; 5,5,3.0")
    with pytest.raises(ValueError, match="metric"):
        calibrate(comfy_inprocess, rel, "", reference=rel)  # a relative map is no metric reference


# ------------------------------------------------------------------------------------ save depth


def save(comfy, depth, prefix="effects_test/depth", fmt="png16"):
    return node(comfy, "Save Depth").execute(depth, prefix, fmt)


def saved_paths(comfy, ui, key="depth_files"):
    root = comfy.base_dir / "output"
    return [root / e["subfolder"] / e["filename"] for e in ui[key]]


def test_save_depth_png16_round_trip_in_the_output_folder(comfy_inprocess):
    metres = DepthMap(
        1.0 + 9.0 * torch.rand(1, H, W, generator=torch.Generator().manual_seed(3)), kind="metric", model="m1"
    )
    out = save(comfy_inprocess, metres, "effects_test/png")
    assert out.args == ()  # an output node without outputs
    (path,) = saved_paths(comfy_inprocess, out.ui)
    assert path.is_file() and path.parent == comfy_inprocess.base_dir / "output" / "effects_test"
    assert path.name.startswith("png_") and path.suffix == ".png"
    assert out.ui["images"] == out.ui["depth_files"]
    back = load_depth(path)
    assert (back.kind, back.units, back.model) == ("metric", "m", "m1")
    torch.testing.assert_close(back.values, metres.values, atol=9.0 / 65535, rtol=0)
    second = save(comfy_inprocess, metres, "effects_test/png")  # the counter moves on, nothing is overwritten
    (path2,) = saved_paths(comfy_inprocess, second.ui)
    assert path2 != path and path.is_file()


@pytest.mark.parametrize("fmt", ["npy", "exr"])
def test_save_depth_float_formats_are_exact(comfy_inprocess, fmt):
    if fmt == "exr" and export.exr_backend() is None:
        pytest.skip("no EXR writer installed (pip install OpenEXR)")
    rel = DepthMap(torch.randn(2, H, W, generator=torch.Generator().manual_seed(4)), model="r")
    out = save(comfy_inprocess, rel, f"effects_test/{fmt}", fmt)
    paths = saved_paths(comfy_inprocess, out.ui)
    data = [p for p in paths if not p.name.endswith(".json")]
    assert all(p.is_file() for p in paths)
    assert len(data) == (1 if fmt == "npy" else 2)  # npy holds the batch, EXR is one file per image
    assert "images" not in out.ui
    back = torch.cat([load_depth(p).values for p in data])
    torch.testing.assert_close(back, rel.values, atol=0, rtol=0)
    assert load_depth(data[0]).kind == "relative"


def test_save_depth_png16_batch_files_keep_counting(comfy_inprocess):
    batch = DepthMap(torch.rand(2, 8, 8))
    first = saved_paths(comfy_inprocess, save(comfy_inprocess, batch, "effects_test/batch").ui)
    second = saved_paths(comfy_inprocess, save(comfy_inprocess, batch, "effects_test/batch").ui)
    assert [p.name for p in first] == ["batch_00001_00000.png", "batch_00001_00001.png"]
    assert [p.name for p in second] == ["batch_00002_00000.png", "batch_00002_00001.png"]


def test_save_depth_without_exr_support_says_how_to_enable_it(comfy_inprocess, monkeypatch):
    monkeypatch.setattr(export, "exr_backend", lambda: None)
    save_node = node(comfy_inprocess, "Save Depth")
    message = save_node.validate_inputs("exr")
    assert isinstance(message, str) and "pip install OpenEXR" in message and "OPENCV_IO_ENABLE_OPENEXR" in message
    assert save_node.validate_inputs("png16") is True
    before = output_files(comfy_inprocess)
    with pytest.raises(ValueError, match="OpenEXR"):
        save(comfy_inprocess, DepthMap(torch.rand(1, 8, 8)), "effects_test/no_exr", "exr")
    assert output_files(comfy_inprocess) == before


def test_save_depth_failure_leaves_no_partial_file(comfy_inprocess, monkeypatch):
    real = export._write_png16
    calls = []

    def failing(path, values, meta):
        calls.append(path)
        if len(calls) == 3:
            path.write_bytes(b"half a png")  # a partly written file, then the disk fills up
            raise OSError("No space left on device")
        real(path, values, meta)

    monkeypatch.setattr(export, "_write_png16", failing)
    before = output_files(comfy_inprocess)
    with pytest.raises(OSError, match="No space"):
        save(comfy_inprocess, DepthMap(torch.rand(4, 8, 8)), "effects_test/fail")
    assert len(calls) == 3
    assert output_files(comfy_inprocess) == before  # neither the two finished files nor the broken one


def test_save_depth_bad_input(comfy_inprocess):
    before = output_files(comfy_inprocess)
    nan = torch.rand(1, 8, 8)
    nan[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="exr or npy"):
        save(comfy_inprocess, DepthMap(nan))
    with pytest.raises(ValueError, match="filename_prefix"):
        save(comfy_inprocess, DepthMap(torch.rand(1, 8, 8)), "  ")
    with pytest.raises(ValueError, match=r"filename_prefix 'depth/a\\x00b' is refused: .*control characters"):
        save(comfy_inprocess, DepthMap(torch.rand(1, 8, 8)), "depth/a\x00b")
    with pytest.raises(ValueError, match="DEPTH"):
        save(comfy_inprocess, torch.rand(1, 8, 8, 3))
    with pytest.raises(ValueError, match="format"):
        save(comfy_inprocess, DepthMap(torch.rand(1, 8, 8)), fmt="tiff")
    assert output_files(comfy_inprocess) == before


# ------------------------------------------------------------------------------------ normals


def normals_node(comfy, depth, fov=60.0, save_ply=False, prefix="effects_test/cloud", stride=1, image=None):
    return node(comfy, "Depth to Normals").execute(depth, fov, save_ply, prefix, stride, image=image)


def decode(normal_image: torch.Tensor) -> torch.Tensor:
    return normal_image * 2.0 - 1.0


def test_normals_of_planes(comfy_inprocess):
    wall = DepthMap(torch.full((1, H, W), 3.0), kind="metric")
    out = normals_node(comfy_inprocess, wall).args[0]
    assert out.shape == (1, H, W, 3) and out.dtype == torch.float32
    torch.testing.assert_close(out, torch.tensor([0.5, 0.5, 1.0]).expand(1, H, W, 3), atol=1e-5, rtol=0)
    # a tilted floor: z = h / (v + t) (v = image row offset / focal length) is the plane y_cam + t z = h,
    # whose normal toward the camera is (0, 1, t) / |.| in OpenGL axes (up and toward the viewer)
    fov, t = 60.0, 0.5
    f = (W / 2) / math.tan(math.radians(fov) / 2)
    v = (torch.arange(H).float() - (H - 1) / 2) / f
    floor = DepthMap((2.0 / (v + t))[None, :, None].expand(1, H, W).contiguous(), kind="metric")
    n = decode(normals_node(comfy_inprocess, floor, fov).args[0])
    torch.testing.assert_close(n.norm(dim=-1), torch.ones(1, H, W), atol=1e-3, rtol=0)  # unit length
    expected = torch.tensor([0.0, 1.0, t]) / math.sqrt(1 + t * t)
    torch.testing.assert_close(n[0, 1:-1, 1:-1], expected.expand(H - 2, W - 2, 3), atol=2e-3, rtol=0)


def test_normals_relative_depth_are_unit_length(comfy_inprocess):
    rel, _ = scene_relative()
    n = decode(normals_node(comfy_inprocess, rel).args[0])
    torch.testing.assert_close(n.norm(dim=-1), torch.ones(1, H, W), atol=1e-3, rtol=0)
    assert float(n[..., 0].abs().mean()) > 0.05  # the map slopes left-right: normals are not all facing


def read_ply(path):
    data = path.read_bytes()
    header, _, body = data.partition(b"end_header\n")
    count = int(next(line.split()[-1] for line in header.decode().splitlines() if line.startswith("element vertex")))
    rows = np.frombuffer(body, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("r", "u1"), ("g", "u1"), ("b", "u1")])
    assert len(rows) == count
    return rows


def test_normals_save_ply_with_image_colours(comfy_inprocess):
    metres = DepthMap(torch.full((1, H, W), 2.0), kind="metric")
    image = torch.zeros(1, H, W, 3)
    image[..., 0] = 1.0  # pure red
    out = normals_node(comfy_inprocess, metres, save_ply=True, image=image, stride=2)
    (path,) = saved_paths(comfy_inprocess, out.ui, "ply_files")
    assert path.suffix == ".ply" and path.parent.name == "effects_test"
    rows = read_ply(path)
    assert len(rows) == (H // 2) * (W // 2)
    assert (rows["r"] == 255).all() and (rows["g"] == 0).all()
    np.testing.assert_allclose(rows["z"], -2.0, atol=1e-5)  # 2 m in front of the camera, looking down -z
    assert out.args[0].shape == (1, H, W, 3)
    assert out.args[1] == f"effects_test/{path.name}"  # ply_file: the path Preview 3D loads, inside output/
    assert normals_node(comfy_inprocess, metres).args[1] == ""  # no PLY written, no path


def test_normals_save_ply_batches(comfy_inprocess):
    depth = DepthMap(1.0 + torch.rand(2, 10, 12), kind="metric")
    out = normals_node(comfy_inprocess, depth, save_ply=True, prefix="effects_test/pair")  # no image: normal colours
    paths = saved_paths(comfy_inprocess, out.ui, "ply_files")
    assert len(paths) == 2 and len({p.name for p in paths}) == 2 and all(len(read_ply(p)) == 120 for p in paths)
    assert out.args[1] == f"effects_test/{paths[0].name}"  # the first point cloud of the batch
    with pytest.raises(ValueError, match="batch"):
        normals_node(comfy_inprocess, DepthMap(torch.rand(3, 10, 12)), save_ply=True, image=torch.rand(2, 10, 12, 3))
    with pytest.raises(ValueError, match="fov"):
        normals_node(comfy_inprocess, depth, fov=180.0)


# ------------------------------------------------------------------------------------ estimate depth options


@pytest.fixture(scope="module")
def model(comfy_inprocess):
    return node(comfy_inprocess, "Load Depth Anything V2").execute(TEST_CHECKPOINT, "fp32", "auto", "auto").args[0]


def estimate(comfy, model, image, **overrides):
    args = dict(
        input_size=SIZE, resolution="keep_aspect", max_side=1932, normalization="min_max", invert=False, chunk_size=0
    )
    args.update(overrides)
    return node(comfy, "Estimate Depth").execute(model, image, **args)


def test_estimate_defaults_unchanged_and_flip_tta(comfy_inprocess, model):
    image = texture(28, 42, b=2)
    plain = estimate(comfy_inprocess, model, image)
    explicit = estimate(
        comfy_inprocess, model, image, flip_tta=False, refine=0.0, temporal_consistency=False, temporal_smoothing=1.0
    )
    torch.testing.assert_close(plain.args[1].values, explicit.args[1].values, atol=0, rtol=0)
    flipped = estimate(comfy_inprocess, model, image, flip_tta=True)
    direct = predict_depth(model.patcher.model, image, input_size=SIZE, flip_tta=True)
    torch.testing.assert_close(flipped.args[1].values, direct, atol=0, rtol=0)
    assert float((flipped.args[1].values - plain.args[1].values).abs().max()) > 1e-4  # TTA changed the result


def fake_network_output(comfy, monkeypatch, values: torch.Tensor) -> None:
    """Estimate Depth's network replaced by fixed depth values [B,H,W] (what predict_depth returns inside the
    shared pipeline, which the node runs)."""
    import dav2_core.pipeline

    monkeypatch.setattr(dav2_core.pipeline, "predict_depth", lambda *args, **kwargs: values.clone())


def test_estimate_refine_snaps_depth_edges_to_image_edges(comfy_inprocess, model, monkeypatch):
    h, w = 56, 112  # network at 28x56 for input_size 28: 2x upscaling, so a 4-px filter window
    image = torch.full((1, h, w, 3), 0.1)
    image[:, :, w // 2 :] = 0.9  # one sharp colour edge in the middle
    x = torch.arange(w).float() - (w // 2 - 0.5)
    step = (x > 0).float().expand(1, h, w)
    noise = 0.05 * torch.randn(1, h, w, generator=torch.Generator().manual_seed(6))
    smeared = torch.sigmoid(x / 1.5).expand(1, h, w) + noise  # an upsampled, noisy depth edge
    fake_network_output(comfy_inprocess, monkeypatch, smeared)
    raw = estimate(comfy_inprocess, model, image).args[1].values
    full = estimate(comfy_inprocess, model, image, refine=1.0).args[1].values
    half = estimate(comfy_inprocess, model, image, refine=0.5).args[1].values
    torch.testing.assert_close(raw, smeared)
    assert full.shape == (1, h, w)

    def steps(d: torch.Tensor) -> torch.Tensor:  # mean one-pixel depth step between neighbouring columns
        return (d[0, :, 1:] - d[0, :, :-1]).mean(0)

    edge = w // 2 - 1  # the step between the image's last dark and first bright column
    raw_steps, full_steps = steps(raw), steps(full)
    assert int(full_steps.argmax()) == edge  # the depth edge sits exactly on the image edge ...
    assert float(full_steps[edge]) > 2.0 * float(raw_steps.max())  # ... as one sharp jump
    others = torch.cat([full_steps[:edge], full_steps[edge + 1 :]])
    assert float(others.abs().max()) < 0.5 * float(raw_steps.topk(2).values[1])  # no smeared ramp around it
    assert float((full - step).abs().mean()) < float((raw - step).abs().mean())
    flat = (0, slice(None), slice(0, w // 2 - 10))  # flat image area: the noise is smoothed away
    assert float(full[flat].std()) < 0.3 * float(raw[flat].std())
    torch.testing.assert_close(half, 0.5 * (raw + full), atol=1e-5, rtol=1e-5)


def _pan(frames: int = 20, h: int = 48, w: int = 64) -> torch.Tensor:
    """Inverse depth [T,H,W] of a smooth scene under a camera panning 0.25 px per frame."""
    ys = torch.arange(h).float()[:, None]
    out = []
    for k in range(frames):
        xs = torch.arange(w).float()[None, :] + 0.25 * k
        out.append(
            0.6
            + 0.25 * torch.sin(2 * math.pi * xs / 70) * torch.cos(2 * math.pi * ys / 50)
            + 0.1 * torch.cos(2 * math.pi * (xs + ys) / 90)
        )
    return torch.stack(out)


@pytest.fixture
def jittered_model_output(comfy_inprocess, monkeypatch):
    """Estimate Depth's network replaced by a panning scene with per-frame random scale/shift, as independent
    relative predictions of video frames have."""
    truth = _pan()
    g = torch.Generator().manual_seed(5)
    a = 0.5 + 1.5 * torch.rand(truth.shape[0], generator=g)
    b = -0.5 + torch.rand(truth.shape[0], generator=g)
    jittered = a[:, None, None] * truth + b[:, None, None]
    for k in range(truth.shape[0]):  # a few flying pixels per frame (edge artefacts) upset per-frame min-max
        idx = torch.randperm(truth[0].numel(), generator=g)[:3]
        jittered[k].view(-1)[idx] = a[k] * (1.0 + 0.6 * torch.rand(3, generator=g)) + b[k]
    fake_network_output(comfy_inprocess, monkeypatch, jittered)
    return jittered


def test_estimate_temporal_consistency_removes_flicker(comfy_inprocess, model, jittered_model_output):
    frames = torch.rand(jittered_model_output.shape[0], 48, 64, 3)
    consistent = estimate(comfy_inprocess, model, frames, temporal_consistency=True).args
    mask = consistent[2]
    assert mask.shape == jittered_model_output.shape
    assert float(mask.min()) == 0.0 and float(mask.max()) == pytest.approx(1.0)
    assert float(mask.amax(dim=(1, 2)).min()) < 0.999  # one normalisation for the batch, not per frame
    for normalization in ("per_image", "batch"):  # per-frame min-max, or one min-max without alignment
        before = estimate(comfy_inprocess, model, frames, normalization=normalization).args[2]
        drop = flicker_metric(before) / flicker_metric(mask)
        assert drop >= 10.0, f"flicker only dropped {drop:.1f}x against {normalization} normalisation"
    assert consistent[1].kind == "relative"
    # smoothing 0: frames keep their own scale (no alignment), only the batch-wide normalisation remains
    loose = estimate(comfy_inprocess, model, frames, temporal_consistency=True, temporal_smoothing=0.0).args[1]
    torch.testing.assert_close(loose.values, jittered_model_output)


def test_estimate_temporal_skips_alignment_for_metric_models(comfy_inprocess, jittered_model_output):
    metric = (
        node(comfy_inprocess, "Load Depth Anything V2")
        .execute(TEST_CHECKPOINT, "fp32", "metric-indoor", "auto")
        .args[0]
    )
    frames = torch.rand(jittered_model_output.shape[0], 48, 64, 3)
    out = estimate(comfy_inprocess, metric, frames, temporal_consistency=True).args
    torch.testing.assert_close(out[1].values, jittered_model_output)  # metres are left alone
    v = -jittered_model_output  # metric: near (small metres) = 1
    torch.testing.assert_close(out[2], (v - v.min()) / (v.max() - v.min()), atol=1e-5, rtol=0)  # batch-wide


def test_estimate_temporal_on_real_frames_runs(comfy_inprocess, model):
    frames = texture(28, 42, b=3)
    out = estimate(
        comfy_inprocess, model, frames, temporal_consistency=True, flip_tta=True, refine=0.5, chunk_size=2
    ).args
    assert out[0].shape == (3, 28, 42, 3) and out[1].values.shape == (3, 28, 42)
    assert torch.isfinite(out[1].values).all()
    v = out[1].values
    torch.testing.assert_close(out[2], (v - v.min()) / (v.max() - v.min()), atol=1e-5, rtol=0)


def test_estimate_bad_option_values(comfy_inprocess, model):
    with pytest.raises(ValueError, match="refine"):
        estimate(comfy_inprocess, model, texture(14, 14), refine=1.5)
    with pytest.raises(ValueError, match="temporal_smoothing"):
        estimate(comfy_inprocess, model, texture(14, 14, b=2), temporal_consistency=True, temporal_smoothing=-0.1)


def test_no_stray_warnings_from_matching_inputs(comfy_inprocess):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # same sizes and batches: nothing to warn about
        bokeh(comfy_inprocess, texture(), three_planes())
        parallax(comfy_inprocess, texture(), three_planes(), frames=2)


def test_repeated_prompts_retain_no_tensors(comfy_inprocess, model):
    """Running the nodes again and again keeps nothing alive per run (no cache, no preview, no model copy):
    the count of live tensors after a warm-up run stays the same. (On a real server, RSS after 20 prompts
    is flat with MALLOC_MMAP_THRESHOLD_ fixed; the 300-600 MB seen otherwise is glibc keeping freed heap.)"""
    import gc

    def one_prompt(k: int) -> None:
        image = texture(b=2, seed=k)
        depth = estimate(comfy_inprocess, model, image, flip_tta=True, refine=0.3).args[1]
        node(comfy_inprocess, "Colorize Depth").execute(depth, "Spectral_r", False, "min_max", 0.0, 1.0)
        node(comfy_inprocess, "Depth Stats").execute(depth, 0)
        bokeh(comfy_inprocess, image, depth)
        parallax(comfy_inprocess, image, depth, frames=3)
        normals_node(comfy_inprocess, depth)
        calibrate(comfy_inprocess, three_planes(), points=f"2,2,5; {W - 3},{H - 3},2")

    def live_tensors() -> int:
        gc.collect()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # isinstance on deprecated torch objects (torch.distributed) warns
            return sum(isinstance(o, torch.Tensor) for o in gc.get_objects())

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random-init depth: calibration may clamp pixels, that is fine here
        one_prompt(0)
        before = live_tensors()
        for k in range(1, 3):
            one_prompt(k)
    assert live_tensors() == before
