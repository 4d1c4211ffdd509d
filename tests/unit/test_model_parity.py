"""Parity with the official implementation (PyPI jkp-depth-anything-v2) on shared random weights."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from dav2_core import DepthAnythingV2
from dav2_core.inference import predict_depth
from dav2_core.variants import ENCODERS

official_dpt = pytest.importorskip("depth_anything_v2.dpt", reason="official jkp-depth-anything-v2 not installed")

_CACHE: dict[tuple[str, bool], tuple[torch.nn.Module, DepthAnythingV2]] = {}


def official_and_ours(encoder: str, metric: bool = False):
    """The official model with seeded random init, and ours loaded strictly from its state dict."""
    key = (encoder, metric)
    if key not in _CACHE:
        spec = ENCODERS[encoder]
        torch.manual_seed(1234)
        official = official_dpt.DepthAnythingV2(
            encoder=encoder, features=spec.features, out_channels=list(spec.out_channels)
        ).eval()
        with torch.no_grad():  # random init can leave the final ReLU all-zero; shift it into the live range
            official.depth_head.scratch.output_conv2[2].bias.fill_(0.05)
        ours = DepthAnythingV2(
            encoder=encoder,
            features=spec.features,
            out_channels=list(spec.out_channels),
            max_depth=20.0 if metric else None,
        ).eval()
        ours.load_state_dict(official.state_dict(), strict=True)
        _CACHE[key] = (official, ours)
    return _CACHE[key]


@pytest.mark.parametrize(
    "encoder,size",
    [
        ("vits", (518, 518)),
        ("vits", (518, 686)),
        ("vits", (266, 140)),
        # the larger encoders are the slow tier (make test-fast keeps the vits shapes)
        pytest.param("vitb", (518, 518), marks=pytest.mark.slow),
        pytest.param("vitb", (350, 518), marks=pytest.mark.slow),
        pytest.param("vitl", (196, 252), marks=pytest.mark.slow),
    ],
)
def test_forward_matches_official(encoder, size):
    official, ours = official_and_ours(encoder)
    x = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        expected = official(x)
        got = ours(x)
    assert got.shape == expected.shape == (2, *size)
    span = float(expected.max() - expected.min())
    assert span > 0 and float((expected > 0).float().mean()) > 0.5, "degenerate random weights"
    assert float((got - expected).abs().max()) <= 1e-4 * span


def test_metric_head_is_sigmoid_times_max_depth():
    """Official metric model: head ends in a sigmoid, output multiplied by max_depth (no final ReLU)."""
    official, _ = official_and_ours("vits")
    _, metric = official_and_ours("vits", metric=True)
    x = torch.randn(1, 3, 140, 182, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        feats = official.pretrained.get_intermediate_layers(
            x, official.intermediate_layer_idx["vits"], return_class_token=True
        )
        head = official.depth_head
        # Rebuild the official metric output: everything up to output_conv2's last conv, then sigmoid * 20.
        pre = head.scratch.output_conv2[:3]
        head_out = head.scratch.output_conv2
        head.scratch.output_conv2 = pre
        try:
            logits = head(feats, 10, 13)
        finally:
            head.scratch.output_conv2 = head_out
        expected = (torch.sigmoid(logits) * 20.0).squeeze(1)
        got = metric(x)
    assert float((got - expected).abs().max()) <= 1e-4 * 20.0
    assert float(got.min()) >= 0.0 and float(got.max()) <= 20.0


def _photo(path) -> np.ndarray:
    bgr = cv2.imread(str(path))
    assert bgr is not None, path
    return bgr


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel().astype(np.float64), b.ravel().astype(np.float64))[0, 1])


@pytest.mark.slow
def test_infer_image_matches_official_on_photos(shared_images):
    official, ours = official_and_ours("vits")
    for path in shared_images:
        bgr = _photo(path)
        expected = official.infer_image(bgr, 518)
        got = ours.infer_image(bgr, 518)
        assert got.shape == expected.shape == bgr.shape[:2]
        assert got.dtype == np.float32
        span = float(expected.max() - expected.min())
        assert _pearson(got, expected) >= 0.9999, path.name
        assert float(np.abs(got - expected).max()) <= 1e-3 * span, path.name


@pytest.mark.slow
def test_tensor_api_matches_official_infer_image(shared_images):
    official, ours = official_and_ours("vits")
    for path in shared_images[:3]:
        bgr = _photo(path)
        expected = official.infer_image(bgr, 518)
        image = torch.from_numpy(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)).float().div(255)[None]
        got = predict_depth(ours, image, input_size=518)[0].numpy()
        assert got.shape == expected.shape
        assert _pearson(got, expected) >= 0.9999, path.name


def test_infer_image_non_multiple_input_size_rounds_like_official():
    official, ours = official_and_ours("vits")
    bgr = np.random.default_rng(0).integers(0, 255, (120, 90, 3), dtype=np.uint8)
    expected = official.infer_image(bgr, 100)
    got = ours.infer_image(bgr, 100)
    assert _pearson(got, expected) >= 0.9999
    assert float(np.abs(got - expected).max()) <= 1e-3 * float(expected.max() - expected.min())


@pytest.mark.parametrize("dtype,tolerance", [(torch.bfloat16, 5e-2)])
def test_reduced_precision_close_to_fp32(dtype, tolerance):
    """CPU bf16 vs fp32 (CUDA fp16 is checked by benchmarks/bench_gpu.py when a GPU is lent)."""
    _, ours = official_and_ours("vits")
    low = DepthAnythingV2("vits").eval()
    low.load_state_dict(ours.state_dict())
    low.to(dtype)
    image = torch.rand(1, 98, 126, 3, generator=torch.Generator().manual_seed(3))
    ref = predict_depth(ours, image, input_size=140)
    got = predict_depth(low, image, input_size=140)
    assert got.dtype == torch.float32 and torch.isfinite(got).all()
    rel = float((got - ref).abs().mean() / (ref.max() - ref.min()))
    assert rel <= tolerance
    assert _pearson(got.numpy(), ref.numpy()) >= 0.99
