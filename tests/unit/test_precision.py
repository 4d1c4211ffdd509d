"""Half precision keeps its float32 islands: casting the model never rounds the position embedding, class
token, LayerNorm weights, LayerScale gammas or the head's last 1x1 convolution, and the depth it outputs
is float32 (metric depth is not quantised to 2^-8 x max_depth steps in bf16)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from checkpoint_factory import make_state_dict, write_checkpoint
from dav2_core import DepthAnythingV2
from dav2_core.engines import as_engine
from dav2_core.inference import predict_depth
from dav2_core.loading import load_model

FLOAT32_PARAMS = re.compile(
    r"^pretrained\.(cls_token|pos_embed|mask_token)$"
    r"|\.norm\d?\.(weight|bias)$"
    r"|\.ls[12]\.gamma$"
    r"|^depth_head\.scratch\.output_conv2\.2\.(weight|bias)$"
)


def _model(max_depth: float | None = None) -> DepthAnythingV2:
    model = DepthAnythingV2("vits", max_depth=max_depth).eval()
    model.load_state_dict(make_state_dict("vits", seed=0))
    return model


def _check_islands(model: torch.nn.Module, low: torch.dtype) -> None:
    kept = [name for name, p in model.named_parameters() if p.dtype == torch.float32]
    cast = [name for name, p in model.named_parameters() if p.dtype == low]
    assert len(kept) + len(cast) == len(list(model.parameters()))
    assert kept == [name for name, _ in model.named_parameters() if FLOAT32_PARAMS.search(name)]
    assert len(kept) == 3 + 12 * 6 + 2 + 2  # tokens; per block 2 norms x 2 + 2 gammas; final norm; last conv
    engine = as_engine(model)
    assert (engine.device, engine.input_dtype) == (torch.device("cpu"), low)


@pytest.mark.parametrize(
    "cast",
    [
        lambda m: m.to(torch.bfloat16),
        lambda m: m.to(device="cpu", dtype=torch.bfloat16),
        lambda m: m.to(dtype=torch.bfloat16),  # what the ComfyUI loader does
        lambda m: m.bfloat16(),
        lambda m: m.half(),
    ],
    ids=["to", "to-device-dtype", "to-dtype", "bfloat16", "half"],
)
def test_casting_keeps_the_small_parameters_float32_and_unrounded(cast):
    reference = _model()
    model = cast(_model())
    low = model.pretrained.patch_embed.proj.weight.dtype
    assert low in (torch.bfloat16, torch.float16)
    _check_islands(model, low)
    for name in ("pretrained.pos_embed", "pretrained.blocks.3.ls1.gamma", "depth_head.scratch.output_conv2.2.weight"):
        assert torch.equal(model.get_parameter(name), reference.get_parameter(name)), name  # never rounded
    model.to(torch.float32).to(low)  # a round trip rounds only what it must
    assert torch.equal(model.pretrained.pos_embed, reference.pretrained.pos_embed)


def test_load_model_bf16_keeps_islands(tmp_path: Path):
    path = write_checkpoint(tmp_path / "m.safetensors", "vits", "official-safetensors")
    _check_islands(load_model(path, device="cpu", dtype="bf16"), torch.bfloat16)


def test_fp16_file_loaded_in_bf16_upcasts_islands(tmp_path: Path):
    """Weights stored in fp16 (kijai's files): the islands are float32 after loading (values as stored)."""
    path = write_checkpoint(tmp_path / "m.safetensors", "vits", "kijai-fp16")
    _check_islands(load_model(path, device="cpu", dtype="bf16"), torch.bfloat16)


def _grid_fraction(values: torch.Tensor, step: float) -> float:
    """Fraction of values lying on multiples of ``step`` (within 1e-3 of a step)."""
    scaled = values.double() / step
    return float(((scaled - scaled.round()).abs() < 1e-3).double().mean())


@torch.inference_mode()
def test_bf16_metric_depth_is_not_quantised_and_close_to_fp32():
    max_depth = 80.0
    ref_model = _model(max_depth)
    low_model = _model(max_depth).to(torch.bfloat16)
    images = torch.rand(2, 56, 70, 3, generator=torch.Generator().manual_seed(4))
    ref = predict_depth(ref_model, images, input_size=56)
    got = predict_depth(low_model, images, input_size=56)
    assert got.dtype == torch.float32 and torch.isfinite(got).all()
    # A bf16 sigmoid puts every value in [0.25, 1) x max_depth on a 2^-9 x max_depth grid (0.16 m at 80 m).
    sig = ref / max_depth
    assert float(((sig > 0.25) & (sig < 1)).double().mean()) > 0.9, "degenerate random weights"
    assert _grid_fraction(got / max_depth, 2.0**-9) < 0.05
    assert len(torch.unique(got)) > 0.5 * got.numel()
    # bf16 matmuls: close to fp32, well below the old quantisation step.
    assert float((got - ref).abs().max()) < 2e-2 * max_depth
    assert float((got - ref).abs().mean()) < 2.0**-9 * max_depth
