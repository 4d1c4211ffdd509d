"""The tensor API on awkward and bad inputs: each gives a correct result or a clear ValueError."""

from __future__ import annotations

import resource

import numpy as np
import pytest
import torch

import dav2_core.chunks
import dav2_core.engines as dav2_core_engines
import dav2_core.inference as inference
from dav2_core import DepthAnythingV2
from dav2_core.inference import predict_depth
from dav2_core.preprocess import network_size


@pytest.fixture(scope="module")
def model(random_vits) -> DepthAnythingV2:
    return random_vits


def _rand(*shape, seed=0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def test_network_size_follows_official_rule():
    # Official Resize(lower_bound, keep aspect, x14) on a 480x640 photo runs at 518x686.
    assert network_size(480, 640, 518) == (518, 686)
    assert network_size(640, 480, 518) == (686, 518)
    assert network_size(1, 1, 518) == (518, 518)
    assert network_size(1080, 1920, 518, "native", max_side=1932) == (1078, 1918)
    assert network_size(100, 100, 518, "native") == (98, 98)


def test_empty_batch_is_a_clear_error(model):
    with pytest.raises(ValueError, match="empty"):
        predict_depth(model, torch.zeros(0, 32, 32, 3))


@pytest.mark.parametrize("bad", [13, 0, -14, 70.5, "518", True])
def test_bad_input_size(model, bad):
    with pytest.raises(ValueError, match="input_size"):
        predict_depth(model, _rand(1, 28, 28, 3), input_size=bad)


def test_input_size_not_multiple_of_14_rounds_like_official(model):
    # 100 is not a multiple of 14: the official rule rounds the network size (up, never below 100).
    assert network_size(100, 100, 100) == (112, 112)
    out = predict_depth(model, _rand(1, 50, 50, 3), input_size=100)
    assert out.shape == (1, 50, 50) and torch.isfinite(out).all()


def test_one_pixel_image(model):
    out = predict_depth(model, _rand(1, 1, 1, 3), input_size=28)
    assert out.shape == (1, 1, 1) and torch.isfinite(out).all()


def test_extreme_aspect_ratio_is_refused_in_keep_aspect_but_runs_native(model):
    strip = _rand(1, 1, 4000, 3)
    with pytest.raises(ValueError, match="too elongated"):
        predict_depth(model, strip, input_size=518)
    out = predict_depth(model, strip, resolution="native", max_side=560)
    assert out.shape == (1, 1, 4000) and torch.isfinite(out).all()


def test_rgba_and_grey_inputs(model):
    rgb = _rand(1, 42, 56, 3)
    ref = predict_depth(model, rgb, input_size=56)
    rgba = torch.cat((rgb, torch.zeros(1, 42, 56, 1)), dim=-1)
    assert torch.equal(predict_depth(model, rgba, input_size=56), ref)
    grey = rgb[..., :1]
    expected = predict_depth(model, grey.expand(-1, -1, -1, 3).contiguous(), input_size=56)
    assert torch.equal(predict_depth(model, grey, input_size=56), expected)


def test_other_channel_counts_are_refused(model):
    with pytest.raises(ValueError, match="channels"):
        predict_depth(model, _rand(1, 28, 28, 2))
    with pytest.raises(ValueError, match=r"\[B,H,W,C\]"):
        predict_depth(model, _rand(28, 28))


@pytest.mark.parametrize(
    ("scale", "offset", "hint"),
    [(255.0, 0.0, "divide it by 255"), (2.0, -1.0, r"\(x \+ 1\) / 2"), (1.0, 5.0, "")],
)
def test_float_images_outside_0_1_are_refused_per_chunk_naming_the_range(model, scale, offset, hint):
    image = _rand(3, 28, 28, 3)
    image[2] = image[2] * scale + offset  # only the last image, in the second chunk
    with pytest.raises(ValueError, match=rf"image 2 of the batch has values .*must hold 0\.\.1 .*0\.3 .*{hint}"):
        predict_depth(model, image, input_size=28, chunk_size=2)


def test_bicubic_overshoot_is_accepted_and_clamped(model):
    """ComfyUI's Upscale Image (bicubic) does not clamp: slightly out-of-range floats are clamped, not refused."""
    image = torch.nn.functional.interpolate(_rand(1, 3, 14, 14, seed=3), size=(42, 42), mode="bicubic")
    image = image.permute(0, 2, 3, 1)
    assert float(image.min()) < -0.01 and float(image.max()) > 1.01
    clamped = image.clamp(0, 1)
    assert torch.equal(predict_depth(model, image, input_size=28), predict_depth(model, clamped, input_size=28))
    assert float(image.min()) < -0.01  # the caller's tensor is left as it was


def test_one_image_rule_for_inference_effects_and_depth_from_image(model):
    from dav2_core.depth import DepthMap
    from dav2_core.effects import guided_filter, lens_blur, parallax_frames

    depth = DepthMap(_rand(1, 28, 28, seed=7) + 1.0)
    rgb = _rand(1, 28, 28, 3, seed=8)
    grey8 = (rgb[..., :1] * 255).round().to(torch.uint8)  # uint8 and grey are accepted everywhere ...
    grey = grey8.float().div(255).expand(-1, -1, -1, 3)
    assert torch.equal(predict_depth(model, grey8, input_size=28), predict_depth(model, grey, input_size=28))
    assert torch.equal(lens_blur(grey8, depth)[0], lens_blur(grey, depth)[0])
    assert torch.equal(parallax_frames(grey8, depth, 2), parallax_frames(grey, depth, 2))
    assert torch.equal(DepthMap.from_image(grey8).values, DepthMap.from_image(grey).values)
    assert torch.allclose(guided_filter(grey8, depth.values), guided_filter(grey, depth.values))
    for bad in (rgb * 255, rgb - 0.5):  # ... and the same float range is enforced everywhere
        for call in (
            lambda x: predict_depth(model, x, input_size=28),
            lambda x: lens_blur(x, depth),
            lambda x: parallax_frames(x, depth, 2),
            DepthMap.from_image,
            lambda x: guided_filter(x, depth.values),
        ):
            with pytest.raises(ValueError, match=r"must hold 0\.\.1"):
                call(bad)
    for call in (lambda x: predict_depth(model, x), lambda x: lens_blur(x, depth), DepthMap.from_image):
        with pytest.raises(ValueError, match="channels"):
            call(_rand(1, 28, 28, 2))
        with pytest.raises(ValueError, match="dtype"):
            call(torch.zeros(1, 28, 28, 3, dtype=torch.int32))


def test_infer_image_refuses_float_bgr_saying_how_to_convert(model):
    bgr = np.random.default_rng(0).random((28, 28, 3)).astype(np.float32)
    with pytest.raises(ValueError, match=r"uint8 .* got dtype float32; .*\* 255"):
        model.infer_image(bgr, 28)
    with pytest.raises(ValueError, match="uint16"):
        model.infer_image((bgr * 65535).astype(np.uint16), 28)
    assert model.infer_image((bgr * 255).astype(np.uint8), 28).shape == (28, 28)


def test_too_many_patches_names_the_real_cause():
    with pytest.raises(ValueError, match=r"input_size 99999 is too large: .*Use input_size 1792 or less\.$"):
        network_size(500, 500, 99999)
    with pytest.raises(ValueError, match=r"too elongated for input_size 518 .*Use input_size 28 or less"):
        network_size(1, 4000, 518)
    # native mode stays under the patch limit instead of failing at the default max_side
    assert network_size(2000, 2000, 518, "native", 1932) == (1792, 1792)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_pixels_are_refused(model, value):
    image = _rand(3, 28, 28, 3)
    image[2, 3, 4, 1] = value
    with pytest.raises(ValueError, match="image 2 of the batch contains NaN/Inf"):
        predict_depth(model, image, input_size=28, chunk_size=2)


def test_large_uint8_batch_is_converted_per_chunk(model, monkeypatch):
    """uint8 frames are converted (and checked) one chunk at a time, never as a whole float batch."""
    import dav2_core.inference as inf

    seen = []
    real = inf.to_rgb_float
    monkeypatch.setattr(inf, "to_rgb_float", lambda x, i=0: seen.append((x.shape[0], x.dtype)) or real(x, i))
    frames = (_rand(6, 28, 28, 3) * 255).to(torch.uint8)
    predict_depth(model, frames, input_size=28, chunk_size=2)
    assert seen == [(2, torch.uint8)] * 3


def test_uint8_fp16_and_non_contiguous_inputs(model):
    rgb8 = (torch.rand(2, 42, 56, 3, generator=torch.Generator().manual_seed(1)) * 255).round().to(torch.uint8)
    as_float = rgb8.float() / 255
    ref = predict_depth(model, as_float, input_size=56)
    assert torch.allclose(predict_depth(model, rgb8, input_size=56), ref, atol=1e-6)
    half = as_float.half()
    assert torch.allclose(predict_depth(model, half, input_size=56), predict_depth(model, half.float(), input_size=56))
    # A non-contiguous view (channels-first storage permuted to BHWC) gives the same answer.
    view = as_float.permute(0, 3, 1, 2).contiguous().permute(0, 2, 3, 1)
    assert not view.is_contiguous()
    assert torch.equal(predict_depth(model, view, input_size=56), ref)


def test_chunks_give_the_same_result_as_one_batch(model):
    images = _rand(5, 28, 42, 3, seed=4)
    whole = predict_depth(model, images, input_size=42, chunk_size=5)
    seen = []
    chunked = predict_depth(model, images, input_size=42, chunk_size=2, progress=lambda d, t: seen.append((d, t)))
    assert torch.allclose(chunked, whole, atol=1e-5)
    assert seen == [(2, 5), (4, 5), (5, 5)]


@pytest.mark.parametrize(
    "failure",
    [
        lambda: torch.OutOfMemoryError("simulated"),
        lambda: RuntimeError("cuDNN error: CUDNN_STATUS_ALLOC_FAILED"),
        lambda: RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"),
    ],
    ids=["OutOfMemoryError", "cudnn-alloc", "cublas-alloc"],
)
def test_out_of_memory_halves_the_chunk_and_keeps_every_frame(model, monkeypatch, failure):
    images = _rand(7, 28, 28, 3, seed=5)
    expected = predict_depth(model, images, input_size=28, chunk_size=1)
    real = inference._forward_chunk
    sizes = []

    def limited(m, chunk, net_size, flip_tta, first_index):
        sizes.append(chunk.shape[0])
        if chunk.shape[0] > 2:
            raise failure()
        return real(m, chunk, net_size, flip_tta, first_index)

    monkeypatch.setattr(inference, "_forward_chunk", limited)
    got = predict_depth(model, images, input_size=28, chunk_size=8)
    assert torch.allclose(got, expected, atol=1e-5)
    assert sizes[:3] == [7, 4, 2] and max(sizes[3:]) <= 2
    assert sum(s for s in sizes if s <= 2) == 7  # each frame computed exactly once


def test_out_of_memory_at_chunk_one_is_a_clear_error(model, monkeypatch):
    def always(*_):
        raise torch.OutOfMemoryError("simulated")

    monkeypatch.setattr(inference, "_forward_chunk", always)
    with pytest.raises(torch.OutOfMemoryError, match="single"):
        predict_depth(model, _rand(2, 28, 28, 3), input_size=28, chunk_size=2)


def test_cancel_from_progress_stops_between_chunks(model):
    calls = []

    def cancel(done, total):
        calls.append(done)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        predict_depth(model, _rand(6, 28, 28, 3), input_size=28, chunk_size=2, progress=cancel)
    assert calls == [2]


def test_flip_tta_averages_flipped_prediction(model):
    image = _rand(1, 28, 42, 3, seed=6)
    plain = predict_depth(model, image, input_size=28)
    flipped = predict_depth(model, image.flip(2), input_size=28).flip(2)
    tta = predict_depth(model, image, input_size=28, flip_tta=True)
    assert torch.allclose(tta, (plain + flipped) / 2, atol=1e-5)


@pytest.mark.slow
def test_8k_image_on_cpu_keeps_memory_bounded(model):
    """An 8K frame runs at the official 518-short-side size; working memory stays a small multiple of the image."""
    image = torch.rand(1, 4320, 7680, 3)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    out = predict_depth(model, image, input_size=518)
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    assert out.shape == (1, 4320, 7680) and torch.isfinite(out).all()
    image_bytes = image.numel() * 4
    assert grown < 4 * image_bytes, (
        f"peak RSS grew by {grown / 2**20:.0f} MiB for a {image_bytes / 2**20:.0f} MiB image"
    )


def test_auto_chunk_size_is_bounded(model):
    chunk = inference.auto_chunk_size(model, (518, 686), (480, 640))
    assert 1 <= chunk <= inference.MAX_CHUNK
    assert dav2_core_engines.as_engine(model).bytes_per_image((518, 686), (480, 640)) > 50 * 2**20


def test_other_runtime_errors_are_not_mistaken_for_out_of_memory(model, monkeypatch):
    calls = []

    def broken(*_):
        calls.append(1)
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    monkeypatch.setattr(inference, "_forward_chunk", broken)
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        predict_depth(model, _rand(4, 28, 28, 3), input_size=28, chunk_size=4)
    assert calls == [1]  # raised at once, no halving retries


def test_out_of_memory_releases_the_failed_chunk_before_retrying(model, monkeypatch):
    """The cache is released after the handler, when the failed chunk's tensors are no longer referenced."""
    import weakref

    real = inference._forward_chunk
    held: list[weakref.ref] = []
    alive_at_release: list[bool] = []

    def limited(m, chunk, net_size, flip_tta, first_index):
        if chunk.shape[0] > 1:
            activations = torch.empty(1000)  # stands for the failed chunk's activations
            held.append(weakref.ref(activations))
            raise torch.OutOfMemoryError("simulated")
        return real(m, chunk, net_size, flip_tta, first_index)

    monkeypatch.setattr(inference, "_forward_chunk", limited)
    monkeypatch.setattr(
        dav2_core.chunks, "release_cached", lambda device: alive_at_release.append(held[-1]() is not None)
    )
    predict_depth(model, _rand(2, 28, 28, 3), input_size=28, chunk_size=2)
    assert alive_at_release == [False]


def test_flip_tta_halves_the_automatic_chunk(model, monkeypatch):
    monkeypatch.setattr(
        inference,
        "free_memory_bytes",
        lambda device: 40 * dav2_core_engines.as_engine(model).bytes_per_image((28, 28), (28, 28)),
    )
    assert inference.auto_chunk_size(model, (28, 28), (28, 28)) == 20
    assert inference.auto_chunk_size(model, (28, 28), (28, 28), flip_tta=True) == 10


class RecordingEngine(dav2_core_engines.EngineBase):
    """A non-torch engine (the protocol only): a fixed function of the input, with every batch recorded."""

    backend = "fake"

    def __init__(self, fixed_size=None):
        self.device, self.input_dtype, self.source = torch.device("cpu"), torch.float32, "fake.onnx"
        self.checkpoint_info = None
        self.max_depth = None
        self.fixed_size = fixed_size
        self.batches = []

    def __call__(self, images):
        self.batches.append(tuple(images.shape))
        return images.mean(1) * 2.0 + 3.0  # [B,3,H,W] -> [B,H,W]

    def bytes_per_image(self, net_size, image_size):
        return 1 << 20

    def check_net_size(self, net_size):
        if self.fixed_size is not None and tuple(net_size) != self.fixed_size:
            raise ValueError(f"this engine runs only {self.fixed_size}, not {net_size}")


def test_any_engine_runs_through_predict_depth_and_infer_image():
    engine = RecordingEngine()
    images = _rand(5, 30, 44, 3, seed=9)
    depth = predict_depth(engine, images, input_size=28, chunk_size=2)
    assert engine.batches == [(2, 3, 28, 42), (2, 3, 28, 42), (1, 3, 28, 42)]
    from dav2_core.preprocess import prepare_batch

    net = prepare_batch(images, (28, 42))
    want = torch.nn.functional.interpolate(
        (net.mean(1) * 2 + 3)[:, None], (30, 44), mode="bilinear", align_corners=True
    )[:, 0]
    torch.testing.assert_close(depth, want, atol=1e-5, rtol=0)
    bgr = (np.random.default_rng(0).random((30, 44, 3)) * 255).astype(np.uint8)
    assert engine.infer_image(bgr, 28).shape == (30, 44)


def test_an_engine_that_cannot_take_a_shape_says_so_before_running():
    engine = RecordingEngine(fixed_size=(28, 28))
    with pytest.raises(ValueError, match="runs only"):
        predict_depth(engine, _rand(1, 30, 44, 3), input_size=28)
    assert engine.batches == []
