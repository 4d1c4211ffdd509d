"""The one estimate path (dav2_core.pipeline): options, whole batches, and streamed chunks of a clip."""

from __future__ import annotations

import pytest
import torch

from dav2_core import DepthAnythingV2
from dav2_core.effects import TemporalAligner
from dav2_core.inference import predict_depth
from dav2_core.normalize import normalize_depth, range_of
from dav2_core.pipeline import DepthStream, EstimateOptions, estimate

SIZE = 28


@pytest.fixture(scope="module")
def model(random_vits) -> DepthAnythingV2:
    return random_vits


@pytest.fixture(scope="module")
def metric_model(random_metric_vits) -> DepthAnythingV2:
    return random_metric_vits


def clip(frames: int = 7, seed: int = 3) -> torch.Tensor:
    """A clip whose frames differ a little (a drifting bright square) so alignment has work to do."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(1, 32, 40, 3, generator=g).repeat(frames, 1, 1, 1)
    for t in range(frames):
        base[t, 8:20, 4 + 2 * t : 16 + 2 * t] = 0.9
    return base


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(input_size=10), "at least 14"),
        (dict(resolution="tiles"), "unknown resolution"),
        (dict(max_side=5), "max_side"),
        (dict(chunk_size=0), "chunk_size"),
        (dict(refine=1.5), "refine"),
        (dict(temporal_smoothing=-0.1), "temporal_smoothing"),
        (dict(normalization="minmax"), "unknown normalization"),
        (dict(normalization="raw", invert=True), "invert cannot be combined"),
    ],
)
def test_bad_options_are_refused_with_the_option_named(bad, match):
    with pytest.raises(ValueError, match=match):
        EstimateOptions(**bad)


def test_estimate_is_predict_then_normalise(model):
    images = torch.rand(3, 30, 44, 3, generator=torch.Generator().manual_seed(1))
    options = EstimateOptions(input_size=SIZE, normalization="percentile", invert=True)
    result = estimate(model, images, options)
    values = predict_depth(model, images, input_size=SIZE)
    torch.testing.assert_close(result.depth.values, values, atol=0, rtol=0)
    torch.testing.assert_close(
        result.normalized, normalize_depth(result.depth, "percentile", invert=True), atol=0, rtol=0
    )
    assert result.depth.kind == "relative" and result.depth.units == "relative"
    image = result.depth_image()
    assert image.shape == (3, 30, 44, 3) and torch.equal(image[..., 0], image[..., 2])


def test_metric_models_give_metric_depth_in_metres(metric_model):
    result = estimate(metric_model, torch.rand(1, 28, 28, 3), EstimateOptions(input_size=SIZE))
    assert result.depth.kind == "metric" and result.depth.units == "m"
    assert 0.0 <= float(result.depth.values.min()) and float(result.depth.values.max()) <= 20.0


def test_temporal_consistency_aligns_frames_and_normalises_over_the_batch(model):
    frames = clip()
    options = EstimateOptions(input_size=SIZE, temporal_consistency=True)
    result = estimate(model, frames, options)
    raw = predict_depth(model, frames, input_size=SIZE)
    torch.testing.assert_close(result.depth.values, TemporalAligner()(raw), atol=1e-6, rtol=0)
    assert result.normalization == "batch"
    torch.testing.assert_close(result.normalized, normalize_depth(result.depth, "batch"), atol=0, rtol=0)


def test_a_streamed_clip_equals_the_whole_clip_at_once(model):
    """Temporal alignment is carried across chunk boundaries: chunks of 3 give the frames of one big batch."""
    frames = clip(8)
    options = EstimateOptions(input_size=SIZE, temporal_consistency=True)
    whole = estimate(model, frames, options)
    lo, hi = range_of(whole.depth, "batch")
    stream = DepthStream(model, options, range_mode="fixed", fixed_range=(float(lo[0]), float(hi[0])))
    parts = [stream(frames[i : i + 3]) for i in range(0, 8, 3)]
    torch.testing.assert_close(torch.cat([p.depth.values for p in parts]), whole.depth.values, atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.cat([p.normalized for p in parts]), whole.normalized, atol=1e-5, rtol=0)
    assert stream.frames_done == 8


def test_running_range_only_widens_across_chunks(model):
    frames = clip(6)
    stream = DepthStream(model, EstimateOptions(input_size=SIZE))
    spans = []
    for i in range(0, 6, 2):
        stream(frames[i : i + 2])
        spans.append((stream._running.lo, stream._running.hi))
    assert all(a[0] >= b[0] and a[1] <= b[1] for a, b in zip(spans, spans[1:]))


def test_image_range_stretches_every_frame(model):
    result = DepthStream(model, EstimateOptions(input_size=SIZE), range_mode="image")(clip(3))
    flat = result.normalized.flatten(1)
    torch.testing.assert_close(flat.amin(1), torch.zeros(3), atol=1e-6, rtol=0)
    torch.testing.assert_close(flat.amax(1), torch.ones(3), atol=1e-6, rtol=0)
    older = DepthStream(model, EstimateOptions(input_size=SIZE), range_mode="per_frame")  # the older name
    assert older.range_mode == "image" and torch.equal(older(clip(3)).normalized, result.normalized)


def test_stream_metric_model_is_not_aligned(metric_model):
    frames = clip(4)
    stream = DepthStream(metric_model, EstimateOptions(input_size=SIZE, temporal_consistency=True))
    out = torch.cat([stream(frames[:2]).depth.values, stream(frames[2:]).depth.values])
    torch.testing.assert_close(out, predict_depth(metric_model, frames, input_size=SIZE), atol=1e-4, rtol=0)  # metres


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(range_mode="fixed"), "fixed_range"),
        (dict(fixed_range=(0.0, 1.0)), "fixed_range"),
        (dict(range_mode="clip"), "unknown range mode"),
    ],
)
def test_bad_stream_settings(model, kwargs, match):
    with pytest.raises(ValueError, match=match):
        DepthStream(model, EstimateOptions(input_size=SIZE), **kwargs)


def test_cancel_is_checked_between_chunks(model):
    calls = []

    def cancel():
        calls.append(1)
        raise InterruptedError("cancelled")

    with pytest.raises(InterruptedError):
        estimate(model, torch.rand(4, 28, 28, 3), EstimateOptions(input_size=SIZE, chunk_size=2), check_cancel=cancel)
    assert calls == [1]
