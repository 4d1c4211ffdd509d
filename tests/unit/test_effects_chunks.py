"""Chunked effects: the same result in any chunking, progress and cancel per chunk, chunks sized from free
memory, out-of-memory halving, and outputs checked against free memory before any work starts."""

from __future__ import annotations

import warnings

import pytest
import torch

import dav2_core.chunks as chunks
from dav2_core.depth import DepthMap
from dav2_core.effects import Execution, calibrate_to_metric, depth_to_normals, lens_blur, parallax_frames
from dav2_core.memory import OutOfMemoryError

H, W = 20, 28


def _scene(b: int = 3) -> tuple[torch.Tensor, DepthMap]:
    g = torch.Generator().manual_seed(1)
    image = torch.rand(b, H, W, 3, generator=g)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, H), torch.linspace(0, 1, W), indexing="ij")
    values = torch.stack([1 + 3 * xx + 0.5 * k * yy + (xx > 0.6).float() for k in range(b)])
    return image, DepthMap(values, "relative", "test")


#: effect -> (call, items it counts progress in)
EFFECTS = {
    "bokeh": (lambda img, d, run: lens_blur(img, d, max_blur_radius=3.0, layers=5, run=run), 3),
    "parallax": (lambda img, d, run: parallax_frames(img, d, 4, "dolly", 0.08, run=run), 12),
    "parallax_one_image": (lambda img, d, run: parallax_frames(img[:1], d[0], 5, "circle", 0.08, run=run), 5),
    "parallax_image_reused": (lambda img, d, run: parallax_frames(img[:1], d, 3, "zoom_in", 0.08, run=run), 9),
    "normals": (lambda img, d, run: depth_to_normals(d, 70.0, run=run), 3),
    "calibrate_points": (
        lambda img, d, run: calibrate_to_metric(d, points=[(W - 2, 2, 2.0), (1, H - 2, 6.0)], run=run)[0].values,
        3,
    ),
    "calibrate_reference": (
        lambda img, d, run: calibrate_to_metric(d, reference=DepthMap(8.0 / d.values[:1], "metric"), run=run)[0].values,
        3,
    ),
}


def _flat(result) -> list[torch.Tensor]:
    return list(result) if isinstance(result, tuple) else [result]


@pytest.mark.parametrize("effect", list(EFFECTS))
def test_any_chunking_gives_the_same_result_with_progress_per_chunk(effect):
    image, depth = _scene()
    call, total = EFFECTS[effect]
    whole = _flat(call(image, depth, None))
    calls = []
    chunked = _flat(call(image, depth, Execution(chunk_size=2, progress=lambda d, t: calls.append((d, t)))))
    assert len(whole) == len(chunked)
    for a, b in zip(whole, chunked):
        assert torch.equal(a, b), effect
    assert calls == [(min(total, k), total) for k in range(2, total + 2, 2)]


def test_parallax_frames_do_not_depend_on_the_rest_of_the_batch():
    image, depth = _scene()
    batch = parallax_frames(image, depth, 3, "swing", 0.1)
    alone = parallax_frames(image[1:2], depth[1], 3, "swing", 0.1)
    assert torch.equal(batch[3:6], alone)


def test_cancel_in_progress_stops_after_the_current_chunk(monkeypatch):
    image, depth = _scene(1)
    import dav2_core.effects.parallax as parallax

    built = []
    real = parallax._frames_chunk
    monkeypatch.setattr(parallax, "_frames_chunk", lambda *a: built.append(a[0].shape[0]) or real(*a))

    class Cancelled(Exception):
        pass

    def progress(done, total):
        raise Cancelled

    with pytest.raises(Cancelled):
        parallax_frames(image, depth, 50, run=Execution(chunk_size=3, progress=progress))
    assert built == [3]  # one chunk of 3 frames, not 50


def test_chunks_are_sized_from_free_memory_after_reserving_one_item(monkeypatch):
    monkeypatch.setattr(chunks, "free_memory_bytes", lambda device: 10_000)
    reserved = []
    run = Execution(reserve=lambda nbytes, device: reserved.append((nbytes, device.type)))
    cpu = torch.device("cpu")
    assert chunks.plan_chunk(100, 1_000, 1, cpu, run) == 5  # half of 10 kB / 1 kB per item
    assert reserved == [(1_000, "cpu")]
    assert chunks.plan_chunk(100, 100_000, 1, cpu, run) == 1  # at least one
    assert chunks.plan_chunk(3, 1, 1, cpu, run) == 3  # never more than the items
    assert chunks.plan_chunk(100, 1, chunks.CPU_CHUNK_PIXELS // 2, cpu, run) == 2  # CPU: pixels per chunk cap
    assert chunks.plan_chunk(100, 1_000, 1, cpu, Execution(chunk_size=7)) == 7
    with pytest.raises(ValueError, match="chunk_size"):
        chunks.plan_chunk(100, 1, 1, cpu, Execution(chunk_size=0))


def test_out_of_memory_halves_the_chunk_and_keeps_every_item():
    done = []

    def work(start, stop):
        if stop - start > 2:
            raise OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        done.extend(range(start, stop))

    chunks.run_chunked(11, work, 1, 1, torch.device("cpu"), Execution(chunk_size=8))
    assert done == list(range(11))

    def always(start, stop):
        raise RuntimeError("CUDNN_STATUS_ALLOC_FAILED")

    with pytest.raises(OutOfMemoryError, match="single frame"):
        chunks.run_chunked(4, always, 1 << 30, 1, torch.device("cpu"), Execution(chunk_size=4), "frame")
    with pytest.raises(ValueError, match="not memory"):  # other errors are not retried
        chunks.run_chunked(
            4, lambda a, b: (_ for _ in ()).throw(ValueError("not memory")), 1, 1, torch.device("cpu"), Execution()
        )


def test_parallax_output_larger_than_free_memory_is_refused_before_any_work(monkeypatch):
    monkeypatch.setattr(chunks, "free_memory_bytes", lambda device: 16 << 30)
    image = torch.rand(1, 1080, 1920, 3)
    depth = DepthMap(torch.rand(1, 1080, 1920))
    with pytest.raises(ValueError) as info:
        parallax_frames(image, depth, 1000, run=Execution(progress=lambda d, t: pytest.fail("work started")))
    message = str(info.value)
    assert "1000 frames of 1920x1080" in message and "23.2 GiB" in message and "16.0 GiB" in message
    assert "fewer frames or a smaller image" in message


def test_effects_return_results_on_the_output_device_and_take_uint8_and_grey():
    image, depth = _scene(2)
    as_uint8 = (image * 255).round().to(torch.uint8)
    run = Execution(device="cpu", output_device="cpu")
    blurred, coc = lens_blur(as_uint8, depth, max_blur_radius=2.0, layers=5, run=run)
    ref, _ = lens_blur(as_uint8.float() / 255, depth, max_blur_radius=2.0, layers=5)
    assert blurred.device.type == "cpu" and torch.equal(blurred, ref)
    grey = image[..., :1]
    frames = parallax_frames(grey, depth, 2, "swing", 0.05)
    assert torch.equal(frames, parallax_frames(grey.expand(-1, -1, -1, 3), depth, 2, "swing", 0.05))


def test_flat_depth_warns_once_naming_every_flat_image_across_chunks():
    image, depth = _scene(4)
    values = depth.values.clone()
    values[0] = 1.0
    values[3] = 2.0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lens_blur(image, depth.with_values(values), run=Execution(chunk_size=1))
    messages = [str(w.message) for w in caught if "no range" in str(w.message)]
    assert len(messages) == 1 and "[0, 3]" in messages[0]
