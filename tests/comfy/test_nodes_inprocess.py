"""The four core nodes run in-process with ComfyUI's real modules (loaded like ComfyUI loads custom nodes).

A seeded random-init vits checkpoint sits in models/depthanything: its depth order is meaningless, so
near = white is checked as "the depth image equals the normalised nearness of the DEPTH output".
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from checkpoint_factory import write_checkpoint
from comfy_harness import (
    DYNAMIC_COMBO,
    NODE_IDS,
    TEST_CHECKPOINT,
    load_nodes_module,
    offered_nodes,
    run_coroutine,
    ui_to_api,
)
from dav2_core.colormaps import COLORMAPS, colorize_in_range, colorize_range, lut
from dav2_core.depth import DepthMap
from dav2_core.inference import predict_depth
from dav2_core.normalize import NORMALIZE_MODES, normalize_depth, range_of
from dav2_core.variants import VARIANTS

SIZE = 70  # network input size for the tests (a multiple of 14; small for 2 CPU cores)


def run_estimate(comfy, model, image, **overrides):
    args = dict(
        input_size=SIZE, resolution="keep_aspect", max_side=1932, normalization="min_max", invert=False, chunk_size=0
    )
    args.update(overrides)
    return comfy.node("Estimate Depth").execute(model, image, **args)


@pytest.fixture(scope="module")
def model(comfy_inprocess):
    return comfy_inprocess.node("Load Depth Anything V2").execute(TEST_CHECKPOINT, "fp32", "auto", "auto").args[0]


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    base = torch.linspace(0, 1, 84)[None, None, :, None].expand(2, 60, 84, 3)
    return (0.6 * base + 0.4 * torch.rand(2, 60, 84, 3, generator=g)).contiguous()


@pytest.fixture(scope="module")
def estimated(comfy_inprocess, model, images):
    return run_estimate(comfy_inprocess, model, images)


# ------------------------------------------------------------------------------------ registration


def test_pack_registered_like_comfyui_does(comfy_inprocess):
    mappings = comfy_inprocess.nodes.NODE_CLASS_MAPPINGS
    names = comfy_inprocess.nodes.NODE_DISPLAY_NAME_MAPPINGS
    offered = offered_nodes(mappings)  # every node, less those this ComfyUI lacks the core types for
    for display, node_id in offered.items():
        assert names[node_id] == display
        assert mappings[node_id].RELATIVE_PYTHON_MODULE.startswith("custom_nodes.")
    module = comfy_inprocess.module
    assert module.WEB_DIRECTORY == "./web"
    extension = run_coroutine(module.comfy_entrypoint())
    assert {n.GET_SCHEMA().node_id for n in run_coroutine(extension.get_node_list())} == set(offered.values())


@pytest.mark.parametrize("display", list(NODE_IDS))
def test_schema_has_category_description_and_tooltips(comfy_inprocess, display):
    if display not in offered_nodes(comfy_inprocess.nodes.NODE_CLASS_MAPPINGS):
        pytest.skip(f"{display} needs core types this ComfyUI lacks (checked in test_nodes_geometry)")
    schema = comfy_inprocess.node(display).GET_SCHEMA()
    assert schema.category == "depth/Depth Anything V2"
    assert len(schema.description) > 40
    for item in schema.inputs + schema.outputs:
        assert item.tooltip, f"{display}: {item.id} has no tooltip"


def test_loader_lists_official_variants_and_folder_files(comfy_inprocess):
    (comfy_inprocess.model_dir / "my_finetune.safetensors").write_bytes(b"")  # any checkpoint file is listed
    (comfy_inprocess.model_dir / "notes.txt").write_text("not a model")
    schema = comfy_inprocess.node("Load Depth Anything V2").GET_SCHEMA()
    model_input = schema.inputs[0]
    assert model_input.id == "model"
    for name in ("vits", "vitl", "metric_hypersim_vitl", "metric_vkitti_vits"):
        assert VARIANTS[name].filename in model_input.options
        assert VARIANTS[name].label in model_input.tooltip
    assert TEST_CHECKPOINT in model_input.options and "my_finetune.safetensors" in model_input.options
    assert "notes.txt" not in model_input.options
    assert "CC-BY-NC-4.0" in model_input.tooltip and "Apache-2.0" in model_input.tooltip
    (comfy_inprocess.model_dir / "my_finetune.safetensors").unlink()
    (comfy_inprocess.model_dir / "notes.txt").unlink()


# ------------------------------------------------------------------------------------ loader


def test_loader_wraps_model_in_comfy_model_patcher(comfy_inprocess, model):
    import comfy.model_patcher

    assert isinstance(model.patcher, comfy.model_patcher.ModelPatcher)
    assert model.patcher.load_device == comfy_inprocess.model_management.get_torch_device()
    assert model.patcher.offload_device == comfy_inprocess.model_management.unet_offload_device()
    assert (model.encoder, model.kind, model.units, model.dtype) == ("vits", "relative", "relative", "fp32")
    assert next(model.patcher.model.parameters()).dtype == torch.float32


def test_loader_checkpoint_type_overrides_metadata(comfy_inprocess):
    loaded = (
        comfy_inprocess.node("Load Depth Anything V2").execute(TEST_CHECKPOINT, "auto", "metric-outdoor", "cpu").args[0]
    )
    assert (loaded.kind, loaded.max_depth, loaded.units) == ("metric", 80.0, "m")
    assert loaded.patcher.model.max_depth == 80.0


def test_loader_official_name_gives_metric_kind(comfy_inprocess):
    """A metric file under its official name (no metadata) is metric with the variant's max depth."""
    variant = VARIANTS["metric_hypersim_vits"]
    path = write_checkpoint(comfy_inprocess.model_dir / variant.filename, "vits", "official-pth")
    try:
        loaded = (
            comfy_inprocess.node("Load Depth Anything V2").execute(variant.filename, "fp32", "auto", "auto").args[0]
        )
        assert (loaded.kind, loaded.max_depth) == ("metric", 20.0)
        depth = run_estimate(comfy_inprocess, loaded, torch.rand(1, 28, 28, 3)).args[1]
        assert depth.kind == "metric" and depth.units == "m"
    finally:
        path.unlink()


def test_loader_metadata_beats_the_file_name(comfy_inprocess):
    """A file under a known metric name (kijai's) whose metadata says relative is relative."""
    name = "depth_anything_v2_metric_vkitti_vits_fp32.safetensors"
    path = write_checkpoint(comfy_inprocess.model_dir / name, "vits", kind="relative")
    try:
        loaded = comfy_inprocess.node("Load Depth Anything V2").execute(name, "fp32", "auto", "auto").args[0]
        assert (loaded.kind, loaded.max_depth) == ("relative", None)
    finally:
        path.unlink()


def test_same_file_same_kind_in_comfyui_and_in_load_model(comfy_inprocess):
    """One kind rule for every caller: an official metric name without metadata is metric in the loader node
    and in dav2_core.loading.load_model (what the CLI calls), not metres in one and relative in the other."""
    from dav2_core.loading import load_model

    variant = VARIANTS["metric_vkitti_vits"]
    path = write_checkpoint(comfy_inprocess.model_dir / variant.filename, "vits", "official-pth")
    try:
        loaded = comfy_inprocess.node("Load Depth Anything V2").execute(variant.filename, "fp32", "auto", "cpu").args[0]
        info = load_model(path, device="cpu", dtype="fp32").checkpoint_info
        assert (loaded.kind, loaded.max_depth) == (info.kind, info.max_depth) == ("metric", 80.0)
        assert info.kind_source == "file name"
        assert loaded.patcher.model.max_depth == 80.0
        # ... and the CLI (dav2 --checkpoint FILE) gives the node's numbers: metres from the same pipeline
        import cv2
        import numpy as np

        from dav2_core import cli

        rgb = (np.random.default_rng(3).random((30, 44, 3)) * 255).astype(np.uint8)
        photo = comfy_inprocess.base_dir / "input" / "same_file.png"
        cv2.imwrite(str(photo), rgb[..., ::-1])
        out = comfy_inprocess.base_dir / "output" / "same_file_cli"
        assert (
            cli.main(
                [
                    str(photo),
                    "-o",
                    str(out),
                    "--checkpoint",
                    str(path),
                    "--device",
                    "cpu",
                    "--input-size",
                    str(SIZE),
                    "--npy",
                    "-q",
                ]
            )
            == 0
        )
        node_depth = run_estimate(comfy_inprocess, loaded, torch.from_numpy(rgb).float()[None] / 255.0).args[1]
        assert node_depth.kind == "metric"
        np.testing.assert_allclose(
            np.load(out / "same_file_depth.npy"), node_depth.values[0].numpy(), atol=1e-4, rtol=0
        )
    finally:
        path.unlink()


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "../../input/evil.pth", "..\\..\\input\\evil.pth"])
def test_loader_refuses_names_outside_the_model_folders(comfy_inprocess, name):
    outside = comfy_inprocess.base_dir / "input" / "evil.pth"  # a real file the traversal names would reach
    outside.write_bytes(b"\x80not a checkpoint")
    try:
        with pytest.raises(ValueError) as err:
            comfy_inprocess.node("Load Depth Anything V2").execute(name, "auto", "auto", "cpu")
    finally:
        outside.unlink()
    message = str(err.value)
    assert "not found in the depthanything model folders" in message and str(comfy_inprocess.model_dir) in message
    assert "Delete" not in message and "download it again" not in message


def _write_garbage(path: Path) -> None:
    """Bytes that are no checkpoint at all."""
    path.write_bytes(b"\x00garbage, not a checkpoint" * 10)


def _write_other_model(path: Path) -> None:
    """A valid safetensors file of another model type (a diffusion UNet's key)."""
    from safetensors.torch import save_file

    save_file({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(4, 4, 3, 3)}, str(path))


@pytest.mark.parametrize(
    ("name", "write"),
    [("broken.safetensors", _write_garbage), ("some_unet.safetensors", _write_other_model)],
    ids=["corrupted_file", "other_model_type"],
)
def test_loader_refuses_a_bad_file_by_name(comfy_inprocess, name: str, write: Callable[[Path], None]):
    path = comfy_inprocess.model_dir / name
    write(path)
    try:
        with pytest.raises(ValueError) as err:
            comfy_inprocess.node("Load Depth Anything V2").execute(name, "auto", "auto", "auto")
        assert name in str(err.value)
    finally:
        path.unlink()


def test_loader_offline_without_file_explains_where_to_put_it(comfy_inprocess, monkeypatch):
    from dav2_core.hub import HubUnavailableError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    variant = VARIANTS["vitb"]
    with pytest.raises(HubUnavailableError) as err:
        comfy_inprocess.node("Load Depth Anything V2").execute(variant.filename, "auto", "auto", "auto")
    message = str(err.value)
    assert variant.filename in message and str(comfy_inprocess.model_dir) in message
    assert "huggingface.co/" + variant.hf_repo in message


def test_loader_fp16_on_cpu_is_refused_with_reason(comfy_inprocess):
    with pytest.raises(ValueError, match="fp16"):
        comfy_inprocess.node("Load Depth Anything V2").execute(TEST_CHECKPOINT, "fp16", "auto", "cpu")


def test_bf16_model_keeps_float32_islands_through_comfy_loading(comfy_inprocess, monkeypatch):
    """Loader cast + ModelPatcher moves keep the small parameters float32; the activation estimate reaches
    ComfyUI's load_models_gpu as memory_required (so it can offload other models first)."""
    import sys

    loader = comfy_inprocess.node("Load Depth Anything V2")
    patcher_module = sys.modules[loader.__module__].model_patcher
    loaded = loader.execute(TEST_CHECKPOINT, "bf16", "auto", "cpu").args[0]
    mm = comfy_inprocess.model_management
    calls = []
    real_load = mm.load_models_gpu
    monkeypatch.setattr(mm, "load_models_gpu", lambda models, **kw: calls.append(kw) or real_load(models, **kw))
    network = patcher_module.load(loaded.patcher, memory_required=123 << 20)
    assert calls == [{"memory_required": 123 << 20, "force_full_load": True}]
    loaded.patcher.model.to("cpu")  # a ModelPatcher-style device move
    params = dict(network.named_parameters())
    assert params["pretrained.patch_embed.proj.weight"].dtype == torch.bfloat16
    for name in (
        "pretrained.pos_embed",
        "pretrained.cls_token",
        "pretrained.blocks.0.norm1.weight",
        "pretrained.blocks.0.ls1.gamma",
        "depth_head.scratch.output_conv2.2.weight",
    ):
        assert params[name].dtype == torch.float32, name
    with pytest.raises(ValueError, match="memory_required"):
        patcher_module.load(loaded.patcher, memory_required=-1)


# ------------------------------------------------------------------------------------ estimate


def test_estimate_outputs_shapes_and_types(estimated, images):
    depth_image, depth, mask = estimated.args
    b, h, w, _ = images.shape
    assert depth_image.shape == (b, h, w, 3) and depth_image.dtype == torch.float32
    assert isinstance(depth, DepthMap) and depth.values.shape == (b, h, w)
    assert (depth.kind, depth.units, depth.model) == ("relative", "relative", TEST_CHECKPOINT)
    assert mask.shape == (b, h, w) and mask.dtype == torch.float32
    assert float(depth.values.std()) > 0, "random-init model gave a constant map; the checks below would be empty"


def test_estimate_image_is_grey_near_white_normalised_depth(estimated):
    depth_image, depth, mask = estimated.args
    assert torch.equal(depth_image[..., 0], depth_image[..., 1]) and torch.equal(
        depth_image[..., 0], depth_image[..., 2]
    )
    v = depth.values.double()
    lo = v.amin(dim=(1, 2), keepdim=True)
    hi = v.amax(dim=(1, 2), keepdim=True)
    expected = ((v - lo) / (hi - lo)).float()  # relative depth: larger = nearer -> 1 = white
    torch.testing.assert_close(depth_image[..., 0], expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(mask, expected, atol=1e-5, rtol=0)
    for i in range(depth.batch):  # the nearest pixel is white, the farthest black
        flat = depth.values[i].flatten()
        assert depth_image[i, ..., 0].flatten()[flat.argmax()] == 1.0
        assert depth_image[i, ..., 0].flatten()[flat.argmin()] == 0.0


def test_estimate_matches_engine_on_the_same_network(estimated, model, images):
    direct = predict_depth(model.patcher.model, images, input_size=SIZE)
    torch.testing.assert_close(estimated.args[1].values, direct, atol=0, rtol=0)


def test_estimate_ui_carries_the_preview(estimated):
    ui = estimated.ui
    assert isinstance(ui, dict) and ui, "Estimate Depth should send the browser preview data"


def test_estimate_invert_and_batch_normalisation(comfy_inprocess, model, images, estimated):
    inverted = run_estimate(comfy_inprocess, model, images, invert=True)
    torch.testing.assert_close(inverted.args[0], 1.0 - estimated.args[0], atol=1e-6, rtol=0)
    torch.testing.assert_close(inverted.args[1].values, estimated.args[1].values)  # DEPTH is never inverted
    batch = run_estimate(comfy_inprocess, model, images, normalization="batch")
    v = batch.args[1].values
    torch.testing.assert_close(batch.args[2], (v - v.min()) / (v.max() - v.min()), atol=1e-5, rtol=0)
    per_image_max = batch.args[2].amax(dim=(1, 2))
    assert float(per_image_max.max()) == pytest.approx(1.0) and float(per_image_max.min()) < 1.0


def test_estimate_raw_keeps_values(comfy_inprocess, model, images, estimated):
    raw = run_estimate(comfy_inprocess, model, images, normalization="raw")
    torch.testing.assert_close(raw.args[2], estimated.args[1].values)
    torch.testing.assert_close(raw.args[0][..., 1], estimated.args[1].values)


def test_estimate_raw_with_invert_is_refused_before_running(comfy_inprocess, model, images):
    node = comfy_inprocess.node("Estimate Depth")
    assert "invert" in node.validate_inputs("raw", True)
    assert node.validate_inputs("min_max", True) is True
    with pytest.raises(ValueError, match="invert"):
        run_estimate(comfy_inprocess, model, images, normalization="raw", invert=True)


def test_estimate_rgba_drops_alpha(comfy_inprocess, model, images, estimated):
    alpha = torch.rand(*images.shape[:3], 1)
    rgba = torch.cat([images, alpha], dim=-1)
    out = run_estimate(comfy_inprocess, model, rgba)
    torch.testing.assert_close(out.args[1].values, estimated.args[1].values)


@pytest.mark.parametrize("hw", [(1, 1), (3, 2), (17, 5)])
def test_estimate_tiny_images_keep_their_size(comfy_inprocess, model, hw):
    out = run_estimate(comfy_inprocess, model, torch.rand(1, *hw, 3))
    assert out.args[0].shape == (1, *hw, 3) and out.args[1].values.shape == (1, *hw)
    assert torch.isfinite(out.args[1].values).all()


def test_estimate_huge_image_keeps_its_size(comfy_inprocess, model):
    image = torch.rand(1, 2160, 3840, 3)  # 4K UHD, network still runs at input_size
    out = run_estimate(comfy_inprocess, model, image, input_size=28)
    assert out.args[0].shape == (1, 2160, 3840, 3)


def test_estimate_extreme_aspect_ratio_says_what_to_do(comfy_inprocess, model):
    with pytest.raises(ValueError, match="native"):
        run_estimate(comfy_inprocess, model, torch.rand(1, 1, 4000, 3), input_size=518)


def test_estimate_empty_batch_is_a_clear_error(comfy_inprocess, model):
    with pytest.raises(ValueError, match="empty"):
        run_estimate(comfy_inprocess, model, torch.zeros(0, 32, 32, 3))


def test_estimate_progress_per_chunk_and_cancel_within_a_chunk(comfy_inprocess, model, monkeypatch):
    """The node reports every chunk to its ProgressBar (ComfyUI 0.33+ then throttles what reaches the hook and
    the websocket, so the bar's own calls are what is recorded) and a cancel stops it within one chunk."""
    import comfy.utils

    mm = comfy_inprocess.model_management
    calls = []
    update_absolute = comfy.utils.ProgressBar.update_absolute

    def record(bar, value, total=None, preview=None):
        calls.append((value, total))
        if calls == [(1, 5), (2, 5)]:
            mm.interrupt_current_processing(True)  # what /interrupt does
        return update_absolute(bar, value, total, preview)

    monkeypatch.setattr(comfy.utils.ProgressBar, "update_absolute", record)
    try:
        with pytest.raises(mm.InterruptProcessingException):
            run_estimate(comfy_inprocess, model, torch.rand(5, 28, 28, 3), input_size=28, chunk_size=1)
    finally:
        mm.interrupt_current_processing(False)
    assert calls == [(1, 5), (2, 5)]  # stopped right after the chunk during which Cancel came
    calls.clear()
    out = run_estimate(comfy_inprocess, model, torch.rand(5, 28, 28, 3), input_size=28, chunk_size=2)
    assert out.args[1].batch == 5  # the next run works


# ------------------------------------------------------------------------------------ colorize


def test_colorize_depth_end_colours(comfy_inprocess, estimated):
    node = comfy_inprocess.node("Colorize Depth")
    depth = estimated.args[1]
    for name in ("Spectral_r", "turbo", "gray"):
        image = node.execute(depth, name, False, "min_max", 0.0, 1.0).args[0]
        assert image.shape == (*depth.values.shape, 3)
        table = lut(name)
        flat = depth.values[0].flatten()
        pixels = image[0].reshape(-1, 3)
        torch.testing.assert_close(pixels[flat.argmax()], table[-1])  # nearest = high end
        torch.testing.assert_close(pixels[flat.argmin()], table[0])  # farthest = low end
    inverted = node.execute(depth, "Spectral_r", True, "min_max", 0.0, 1.0).args[0]
    torch.testing.assert_close(inverted[0].reshape(-1, 3)[depth.values[0].flatten().argmax()], lut("Spectral_r")[0])
    assert set(COLORMAPS) == set(node.GET_SCHEMA().inputs[1].options)


def test_colorize_accepts_a_depth_image(comfy_inprocess, estimated):
    node = comfy_inprocess.node("Colorize Depth")
    from_image = node.execute(estimated.args[0], "viridis", False, "min_max", 0.0, 1.0).args[0]
    from_depth = node.execute(estimated.args[1], "viridis", False, "min_max", 0.0, 1.0).args[0]
    torch.testing.assert_close(from_image, from_depth, atol=2e-3, rtol=0)
    rgba = torch.cat([estimated.args[0], torch.ones(*estimated.args[0].shape[:3], 1)], dim=-1)
    torch.testing.assert_close(node.execute(rgba, "viridis", False, "min_max", 0.0, 1.0).args[0], from_image)


def test_colorize_manual_range(comfy_inprocess):
    node = comfy_inprocess.node("Colorize Depth")
    metric = DepthMap(torch.tensor([[[1.0, 2.0, 3.0, 10.0]]]), kind="metric")
    image = node.execute(metric, "gray", False, "manual", 1.0, 3.0).args[0]
    np.testing.assert_allclose(image[0, 0, :, 0].numpy(), [1.0, 0.5, 0.0, 0.0], atol=1e-6)  # 1 m near = white


@pytest.mark.parametrize("mode, bounds", [("min_max", (0.0, 1.0)), ("percentile", (0.0, 1.0)), ("manual", (0.2, 0.7))])
def test_colorize_preview_carries_the_range_it_coloured_with(comfy_inprocess, estimated, mode, bounds):
    node = comfy_inprocess.node("Colorize Depth")
    depth = estimated.args[1]
    out = node.execute(depth, "viridis", True, mode, *bounds)
    lo, hi = colorize_range(depth, mode, *(bounds if mode == "manual" else (None, None)))
    entries = out.ui["dav2_depth"]
    assert [(e["display_min"], e["display_max"]) for e in entries] == list(zip(lo.tolist(), hi.tolist()))
    torch.testing.assert_close(out.args[0], colorize_in_range(depth, lo, hi, "viridis", invert=True), atol=0, rtol=0)
    if mode == "min_max":  # the depth's own min/max, as the preview had before
        assert all(
            e["display_min"] == pytest.approx(e["min"]) and e["display_max"] == pytest.approx(e["max"]) for e in entries
        )


def test_colorize_manual_min_not_below_max_is_refused(comfy_inprocess, estimated):
    node = comfy_inprocess.node("Colorize Depth")
    message = node.validate_inputs("manual", 2.0, 2.0)
    assert isinstance(message, str) and "manual_min" in message and "manual_max" in message
    assert node.validate_inputs("min_max", 2.0, 2.0) is True  # min/max are ignored outside manual
    with pytest.raises(ValueError, match="min must be smaller than max"):
        node.execute(estimated.args[1], "gray", False, "manual", 5.0, 1.0)


def test_colorize_mask_is_refused_with_what_to_connect(comfy_inprocess, estimated):
    node = comfy_inprocess.node("Colorize Depth")
    with pytest.raises(ValueError, match="DEPTH"):
        node.execute(estimated.args[2], "gray", False, "min_max", 0.0, 1.0)


# ------------------------------------------------------------------------------------ stats


def test_depth_stats_text_ui_and_plot(comfy_inprocess, estimated):
    node = comfy_inprocess.node("Depth Stats")
    depth = estimated.args[1]
    out = node.execute(depth, 1)
    text, plot = out.args
    assert "Depth stats" in text and "Image 2" in text
    assert plot.shape == (1, 900, 1200, 3) and 0.0 <= float(plot.min()) and float(plot.max()) <= 1.0
    assert out.ui["text"] == [text]
    stats = out.ui["dav2_stats"][0]
    assert stats["batch_size"] == depth.batch and stats["units"] == "relative"
    assert stats["images"][0]["max"] == pytest.approx(float(depth.values[0].max()), rel=1e-6)
    assert node.GET_SCHEMA().is_output_node


def test_depth_stats_bad_inputs(comfy_inprocess, estimated):
    node = comfy_inprocess.node("Depth Stats")
    with pytest.raises(ValueError, match="plot_index"):
        node.execute(estimated.args[1], 5)
    for wrong in (estimated.args[0], estimated.args[2]):  # an IMAGE or a MASK wired where DEPTH is expected
        with pytest.raises(ValueError, match="DEPTH"):
            node.execute(wrong, 0)


def test_normalization_combo_is_the_engine_list(comfy_inprocess):
    inputs = {i.id: i for i in comfy_inprocess.node("Estimate Depth").GET_SCHEMA().inputs}
    assert inputs["normalization"].options == list(NORMALIZE_MODES)
    assert inputs["input_size"].default == 518 and inputs["input_size"].step == 14 and inputs["input_size"].min == 14


def test_estimate_asks_comfyui_for_room_for_its_activations(comfy_inprocess, model, monkeypatch):
    """Estimate Depth passes the working memory of one chunk (pipeline.EstimateOptions.memory_required) to
    load_models_gpu, so ComfyUI offloads other models for activations too, not only for the weights."""
    from dav2_core.pipeline import EstimateOptions

    mm = comfy_inprocess.model_management
    calls = []
    real_load = mm.load_models_gpu
    monkeypatch.setattr(mm, "load_models_gpu", lambda models, **kw: calls.append(kw) or real_load(models, **kw))
    run_estimate(comfy_inprocess, model, torch.rand(3, 40, 60, 3), chunk_size=2, flip_tta=True)
    want = EstimateOptions(input_size=SIZE, chunk_size=2, flip_tta=True).memory_required(model.patcher.model, 3, 40, 60)
    assert calls[-1]["memory_required"] == want > 0
    one = EstimateOptions(input_size=SIZE, chunk_size=1).memory_required(model.patcher.model, 3, 40, 60)
    assert want == 4 * one  # two images per chunk, each run twice for flip TTA


def test_loader_auto_precision_is_the_engines_rule_with_comfyuis_answers(comfy_inprocess, monkeypatch):
    """The loader's "auto" is dav2_core.dtypes.auto_precision, told by ComfyUI whether fp16/bf16 run well."""
    patcher_module = sys.modules[comfy_inprocess.node("Load Depth Anything V2").__module__].model_patcher
    mm = comfy_inprocess.model_management
    gpu = torch.device("cuda", 0)
    answers = {"fp16": True, "bf16": True}
    monkeypatch.setattr(mm, "should_use_fp16", lambda device=None, *a, **k: answers["fp16"])
    monkeypatch.setattr(mm, "should_use_bf16", lambda device=None, *a, **k: answers["bf16"])
    assert patcher_module.compute_dtype("auto", torch.device("cpu")) == torch.float32
    assert patcher_module.compute_dtype("auto", gpu) == torch.float16
    answers["fp16"] = False
    assert patcher_module.compute_dtype("auto", gpu) == torch.bfloat16
    answers["bf16"] = False
    assert patcher_module.compute_dtype("auto", gpu) == torch.float32
    assert patcher_module.compute_dtype("bf16", torch.device("cpu")) == torch.bfloat16
    with pytest.raises(ValueError, match="fp16 is not supported on the CPU"):
        patcher_module.compute_dtype("fp16", torch.device("cpu"))


# ------------------------------------------------------------------------------------ range names

#: The range names the nodes offer (dav2_core.ranges' one vocabulary), in order (the first is the default).
RANGE_NAMES = {
    ("Estimate Depth", "normalization"): ["min_max", "percentile", "batch", "raw"],
    ("Video Depth", "normalization"): ["clip", "running", "image"],
    ("Video Depth", "range_statistic"): ["min_max", "percentile"],
    ("Colorize Depth", "range_mode"): ["min_max", "percentile", "manual"],
}
#: The names earlier versions offered for the same choices, position by position (saved workflows and API prompts
#: hold them: they must keep working; never remove one).
OLDER_NAMES = {
    ("Estimate Depth", "normalization"): ["per_image", "percentile", "batch", "raw"],
    ("Video Depth", "normalization"): ["two_pass", "running", "per_frame"],
    ("Video Depth", "range_statistic"): ["min_max", "percentile"],
    ("Colorize Depth", "range_mode"): ["auto", "percentile", "manual"],
}
#: Each input's dav2_core.ranges front end.
FRONT_END = {
    ("Estimate Depth", "normalization"): "estimate",
    ("Video Depth", "normalization"): "video",
    ("Video Depth", "range_statistic"): "video_statistic",
    ("Colorize Depth", "range_mode"): "colorize",
}


def _object_info(comfy, name: str) -> dict:
    info = comfy.node(name).GET_NODE_INFO_V1()
    return {info["name"]: info}


def _api_inputs(comfy, name: str, widgets_values: list) -> dict:
    """A node's inputs from a UI-format workflow's positional ``widgets_values`` (as the frontend converts them),
    with ComfyUI 0.33's ``<combo>.<input>`` keys nested into the combo's value the way its executor hands them."""
    object_info = _object_info(comfy, name)
    node_type = next(iter(object_info))
    workflow = {"nodes": [{"id": 1, "type": node_type, "inputs": [], "widgets_values": widgets_values}], "links": []}
    inputs = dict(ui_to_api(workflow, object_info)["1"]["inputs"])
    for key in [k for k in inputs if "." in k]:
        combo, sub = key.split(".", 1)
        if not isinstance(inputs[combo], dict):
            inputs[combo] = {combo: inputs[combo]}
        inputs[combo][sub] = inputs.pop(key)
    return inputs


def _older_and_current(key: tuple[str, str]) -> list[tuple[str, str]]:
    return list(zip(OLDER_NAMES[key], RANGE_NAMES[key]))


@pytest.mark.parametrize("node_input", list(RANGE_NAMES), ids=lambda k: f"{k[0]}.{k[1]}")
def test_range_names_are_offered_in_order(comfy_inprocess, node_input):
    """Each range combo offers the vocabulary's names, in the order (and so with the default) it always had."""
    name, input_id = node_input
    spec = {i.id: i for i in comfy_inprocess.node(name).GET_SCHEMA().inputs}[input_id]
    options = [o.key for o in spec.options] if hasattr(spec.options[0], "key") else list(spec.options)
    assert options == RANGE_NAMES[node_input]


@pytest.mark.parametrize("node_input", list(RANGE_NAMES), ids=lambda k: f"{k[0]}.{k[1]}")
def test_older_names_are_the_same_choices(node_input):
    """ranges.canonical maps every older name to the current name at its position, and the web extension's table
    (nodes/range_names.py, served by GET /dav2/config) holds exactly the renamed ones."""
    from dav2_core.ranges import canonical

    front_end = FRONT_END[node_input]
    assert [canonical(old, front_end) for old in OLDER_NAMES[node_input]] == RANGE_NAMES[node_input]
    renamed = {old: new for old, new in _older_and_current(node_input) if old != new}
    node_id, input_id = NODE_IDS[node_input[0]], node_input[1]
    assert load_nodes_module("range_names").legacy_values().get(node_id, {}).get(input_id, {}) == renamed


@pytest.mark.parametrize(("old", "new"), _older_and_current(("Estimate Depth", "normalization")))
def test_saved_estimate_normalization_runs_as_before(comfy_inprocess, model, images, old, new):
    """A workflow saved before the tile and tta inputs with an older normalization name (UI format: positional
    widgets_values), the same node in API format, and the current name all give the engine's normalisation of
    that choice, bit for bit."""
    ui_inputs = _api_inputs(comfy_inprocess, "Estimate Depth", [SIZE, "keep_aspect", 1932, old, False, 0])
    assert ui_inputs["normalization"] == old and ui_inputs["tta"] == "none"
    node = comfy_inprocess.node("Estimate Depth")
    assert node.validate_inputs(normalization=old, invert=False) is True
    from_ui = node.execute(model, images, **ui_inputs)
    from_old = run_estimate(comfy_inprocess, model, images, normalization=old)
    from_new = run_estimate(comfy_inprocess, model, images, normalization=new)
    depth = from_new.args[1]
    expected = depth.values if new == "raw" else normalize_depth(depth, new)
    for out in (from_ui, from_old, from_new):
        assert torch.equal(out.args[1].values, depth.values)
        assert torch.equal(out.args[2], expected)


@pytest.mark.parametrize(("old", "new"), _older_and_current(("Colorize Depth", "range_mode")))
def test_saved_colorize_range_mode_runs_as_before(comfy_inprocess, estimated, old, new):
    """Colorize's saved range_mode (older name) in UI format (0.3.75's flat layout, read by 0.33's DynamicCombo
    too) and in API format colours with the range it always had, as the current name does: each image's min-max,
    its 2nd-98th percentiles, or the bounds."""
    node = comfy_inprocess.node("Colorize Depth")
    depth = estimated.args[1]
    # where range_mode is a DynamicCombo (0.33) the harness's UI conversion, like the frontend, needs an option:
    # the web extension renames the older name on load there (web/range_names.js, checked in the browser tests)
    dynamic = node.INPUT_TYPES()["required"]["range_mode"][0] == DYNAMIC_COMBO
    ui_inputs = _api_inputs(comfy_inprocess, "Colorize Depth", ["viridis", False, new if dynamic else old, 0.2, 0.7])
    assert node.validate_inputs(**ui_inputs) is True
    from_ui = node.execute(depth, **ui_inputs).args[0]
    outs = [
        node.execute(depth, colormap="viridis", invert=False, range_mode=mode, manual_min=0.2, manual_max=0.7).args[0]
        for mode in (old, new)
    ]
    if new == "manual":
        lo, hi = torch.full((depth.batch,), 0.2), torch.full((depth.batch,), 0.7)
    else:
        lo, hi = range_of(depth, "min_max") if new == "min_max" else range_of(depth, "percentile", 2.0, 98.0)
    expected = colorize_in_range(depth, lo, hi, "viridis")
    assert all(torch.equal(out, expected) for out in (from_ui, *outs))


@pytest.mark.parametrize("statistic", RANGE_NAMES[("Video Depth", "range_statistic")])
@pytest.mark.parametrize(("old", "new"), _older_and_current(("Video Depth", "normalization")))
def test_saved_video_range_names_map_as_before(comfy_inprocess, old, new, statistic):
    """Video Depth's saved normalization (older name) / range_statistic (UI and API format) give the core options
    the current names give: the clip range mode, the per-frame statistic as the estimate's min_max / percentile."""
    module = sys.modules[comfy_inprocess.node("Video Depth").__module__]
    widgets = [SIZE, "keep_aspect", 1932, old, statistic, False, "gray", 0, 0, 1, 0, "none", "video/dav2_depth"]
    ui_inputs = _api_inputs(comfy_inprocess, "Video Depth", widgets)
    ui_inputs.pop("filename_prefix")
    from_ui = module.video_options(**ui_inputs)
    from_old = module.video_options(input_size=SIZE, normalization=old, range_statistic=statistic)
    from_new = module.video_options(input_size=SIZE, normalization=new, range_statistic=statistic)
    assert from_ui == from_old == from_new
    assert from_ui.range_mode == new and from_ui.estimate.normalization == statistic


def _validate(prompt: dict, node_id: str) -> tuple[bool, list[dict]]:
    """ComfyUI's own validation of one node of an API prompt (recursing into the nodes it links to), as queueing
    runs it, without the server's on_prompt handlers."""
    import execution

    ok, errors, _ = run_coroutine(execution.validate_inputs("range-names", prompt, node_id, {}))
    return ok, errors


class _VideoSource:
    """A V1 stand-in for core's Load Video (in-process ComfyUI loads no comfy_extras nodes): a VIDEO output."""

    RETURN_TYPES = ("VIDEO",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls) -> dict:  # noqa: N802 (ComfyUI's name)
        return {"required": {}}


def test_comfyui_validation_takes_older_names_and_refuses_unknown_ones(comfy_inprocess, monkeypatch):
    """ComfyUI checks a combo value against the option list unless the node's validate_inputs declares the input:
    Estimate Depth and Video Depth declare ``normalization`` and Colorize Depth ``range_mode``, so the older names
    pass ComfyUI's own validation (no on_prompt handler involved) and an unknown name is refused naming the
    choices. On ComfyUI 0.33 Colorize's range_mode is a DynamicCombo, which ComfyUI drops when its value is no
    option: there the server's on_prompt handler (nodes/range_names.current_names) renames it first, checked too."""
    from PIL import Image

    from comfy_harness import estimate_graph, video_depth_graph

    input_dir = Path(comfy_inprocess.folder_paths.get_input_directory())
    Image.fromarray(np.full((20, 28, 3), 128, np.uint8)).save(input_dir / "range_names.png")
    monkeypatch.setitem(comfy_inprocess.nodes.NODE_CLASS_MAPPINGS, "LoadVideo", _VideoSource)

    def video_prompt(normalization: str) -> dict:
        prompt = video_depth_graph("range_names.mp4", TEST_CHECKPOINT, "video/range_names", normalization=normalization)
        prompt["1"]["inputs"] = {}
        return prompt

    range_names = load_nodes_module("range_names")
    dynamic = comfy_inprocess.node("Colorize Depth").INPUT_TYPES()["required"]["range_mode"][0] == DYNAMIC_COMBO

    def image_prompt(normalization: str, range_mode: str) -> dict:
        graph, _, estimate = estimate_graph("range_names.png", normalization=normalization)
        graph.add("DAV2ColorizeDepth", depth=estimate["depth"], range_mode=range_mode)
        return graph.to_api()

    for old, new in (("per_image", "min_max"), ("auto", "min_max")):
        estimate_old = "per_image" if old == "per_image" else "min_max"
        prompt = image_prompt(estimate_old, old if old == "auto" else "min_max")
        assert _validate(prompt, "3") == (True, [])
        colorize_ok, colorize_errors = _validate(prompt, "4")
        assert colorize_ok is not (dynamic and old == "auto"), colorize_errors
        renamed = range_names.current_names({"prompt": prompt})["prompt"]
        assert renamed["4"]["inputs"]["range_mode"] == "min_max" and renamed["3"]["inputs"]["normalization"] == new
        assert _validate(renamed, "4") == (True, [])
    for old in ("two_pass", "per_frame"):
        assert _validate(video_prompt(old), "3") == (True, []), old

    bad = image_prompt("sideways", "min_max")
    ok, errors = _validate(bad, "3")
    assert not ok and "'sideways'" in str(errors) and "min_max, percentile, batch, raw" in str(errors)
    ok, errors = _validate(image_prompt("min_max", "sideways"), "4")
    assert not ok and "min_max, percentile, manual" in str(errors)
    ok, errors = _validate(video_prompt("sideways"), "3")
    assert not ok and "'sideways'" in str(errors) and "clip, running, image" in str(errors)
