"""Multi-scale / flip test-time augmentation (dav2_core.tta) through the one estimate path."""

from __future__ import annotations

import re

import pytest
import torch

import dav2_core.inference as inference
from dav2_core.engines import EngineBase
from dav2_core.inference import predict_depth
from dav2_core.pipeline import EstimateOptions, estimate
from dav2_core.preprocess import MAX_INPUT_SIZE, network_size
from dav2_core.tta import (
    LARGE_SCALE,
    MIN_MULTI_SCALE_INPUT_SIZE,
    TTA_MODES,
    fit_to_base,
    merge_views,
    tta_mode,
    tta_parts,
    view_sizes,
)


def _rand(*shape, seed=0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def _field(h: int, w: int, mirror_free: bool = False) -> torch.Tensor:
    """A smooth map bilinear interpolation reproduces exactly (1 + 2x + 3y + 4xy on align-corners coordinates)."""
    y = torch.linspace(0, 1, h, dtype=torch.float64)[:, None]
    x = torch.linspace(0, 1, w, dtype=torch.float64)[None, :]
    if mirror_free:  # unchanged by a horizontal flip
        return (1 + 3 * y).expand(h, w).float()
    return (1 + 2 * x + 3 * y + 4 * x * y).float()


class FieldEngine(EngineBase):
    """An engine whose depth is a fixed smooth field in network coordinates, with a scale and shift that differ
    per network size (as a real model's relative depth does from pass to pass): its views are identical up to
    scale and shift, so multi-scale TTA must give back the base view's map."""

    backend = "test"

    def __init__(self, mirror_free: bool = False) -> None:
        self.device = torch.device("cpu")
        self.input_dtype = torch.float32
        self.mirror_free = mirror_free
        self.sizes: list[tuple[int, int]] = []

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        h, w = images.shape[-2:]
        self.sizes.append((h, w))
        scale, shift = h / 100.0, w / 37.0
        return (scale * _field(h, w, self.mirror_free) + shift).expand(images.shape[0], h, w).clone()

    def bytes_per_image(self, net_size, image_size):
        return 1 << 20


# ------------------------------------------------------------------------------------------------ merging
def test_views_identical_up_to_scale_and_shift_merge_to_the_base():
    base = _rand(2, 30, 40, seed=1) * 5 + 1
    views = [base * 3.0 - 2.0, base * 0.25 + 7.0]
    merged = merge_views(base, iter(views))
    torch.testing.assert_close(merged, base, atol=1e-5, rtol=1e-5)


def test_views_on_other_grids_are_resized_to_the_base_grid_before_merging():
    base = _field(30, 40)[None].repeat(2, 1, 1)
    views = [_field(22, 30)[None].repeat(2, 1, 1) * 2 + 1, _field(38, 50)[None].repeat(2, 1, 1) * 0.5 - 3]
    merged = merge_views(base, views)
    assert merged.shape == base.shape
    torch.testing.assert_close(merged, base, atol=1e-5, rtol=1e-5)


def test_metric_views_are_averaged_in_inverse_metres_without_a_fit():
    one, three = torch.full((1, 8, 8), 1.0), torch.full((1, 8, 8), 3.0)
    torch.testing.assert_close(merge_views(one, [three], "metric"), torch.full((1, 8, 8), 1.5))  # 2 / (1 + 1/3)
    metres = _rand(2, 12, 16, seed=2) * 10 + 0.5
    torch.testing.assert_close(merge_views(metres, [metres.clone(), metres.clone()], "metric"), metres)


def test_a_view_that_fits_with_a_negative_scale_is_left_out():
    base = _rand(2, 20, 20, seed=3)
    merged = merge_views(base, [-base])
    torch.testing.assert_close(merged, base)


def test_the_fit_trims_outliers():
    base = _rand(1, 40, 40, seed=4)
    view = 2.0 * base + 1.0
    view[0, :4, :4] = 100.0  # flying pixels
    fitted, usable = fit_to_base(base, view)
    assert bool(usable.all())
    inliers = torch.ones_like(base, dtype=torch.bool)
    inliers[0, :4, :4] = False
    torch.testing.assert_close(fitted[inliers], base[inliers], atol=1e-5, rtol=0)


# ------------------------------------------------------------------------------------------------ sizes
def test_view_sizes_are_documented_scales_in_multiples_of_14():
    assert view_sizes((518, 686)) == [(392, 518), (644, 854)]
    for base in [(42, 42), (518, 686), (1078, 1918), (266, 476)]:
        small, large = view_sizes(base)
        assert all(side % 14 == 0 for side in (*small, *large))
        assert small[0] < base[0] < large[0] and small[1] < base[1] < large[1]
    small, large = view_sizes((1078, 1918))  # 1080p native: 1.25x would pass the patch limit -> capped
    assert (large[0] // 14) * (large[1] // 14) <= 128 * 128 and large[0] < 1078 * LARGE_SCALE


def test_modes_and_their_parts():
    assert list(TTA_MODES) == ["none", "flip", "multi_scale", "multi_scale_flip"]
    for mode in TTA_MODES:
        assert tta_mode(*tta_parts(mode)) == mode
        assert "x compute" in TTA_MODES[mode]  # the cost multiplier is in the help text


# ------------------------------------------------------------------------------------------------ estimate path
@pytest.mark.parametrize("scale_up", [1, 2])
def test_merged_map_on_a_scaled_copy_equals_the_original_map(scale_up):
    """The correctness check: views identical up to scale/shift -> the merged map is the base view's map, for
    the image and for a scaled copy of it (both are the same field sampled on their own pixel grid)."""
    image = _rand(1, 45, 60, 3, seed=5)
    copy = torch.nn.functional.interpolate(image.permute(0, 3, 1, 2), scale_factor=scale_up, mode="bilinear")
    copy = copy.permute(0, 2, 3, 1).clamp(0, 1)
    engine = FieldEngine()
    plain = predict_depth(engine, image, input_size=56)
    engine.sizes.clear()
    merged = predict_depth(engine, copy, input_size=56, multi_scale=True)
    assert len(engine.sizes) == 3 and len(set(engine.sizes)) == 3  # three distinct views ran
    h, w = copy.shape[1:3]
    net = network_size(45, 60, 56)
    expected = (net[0] / 100.0) * _field(h, w) + net[1] / 37.0  # the base view's field at the copy's pixels
    torch.testing.assert_close(merged[0], expected, atol=2e-5, rtol=2e-5)
    if scale_up == 1:
        torch.testing.assert_close(merged, plain, atol=2e-5, rtol=2e-5)


def test_multi_scale_flip_of_identical_views_is_the_plain_map():
    image = _rand(2, 40, 52, 3, seed=6)
    engine = FieldEngine(mirror_free=True)
    plain = estimate(engine, image, EstimateOptions(input_size=56, normalization="raw")).depth.values
    merged = estimate(engine, image, EstimateOptions(input_size=56, tta="multi_scale_flip", normalization="raw"))
    torch.testing.assert_close(merged.depth.values, plain, atol=2e-5, rtol=2e-5)


def test_old_flip_tta_option_is_the_flip_mode_and_gives_the_same_result(random_vits):
    image = _rand(2, 40, 52, 3, seed=7)
    old = EstimateOptions(input_size=56, flip_tta=True)
    assert old.tta == "flip" and old == EstimateOptions(input_size=56, tta="flip")
    assert EstimateOptions(flip_tta=True, tta="multi_scale").tta == "multi_scale_flip"
    assert EstimateOptions(tta="multi_scale_flip").flip_tta is True
    assert old.with_(tta="none").tta == "none" and old.with_(tta="multi_scale").tta == "multi_scale"
    assert EstimateOptions(tta="multi_scale_flip").with_(flip_tta=False).tta == "multi_scale"
    a = estimate(random_vits, image, old).depth.values
    b = estimate(random_vits, image, EstimateOptions(input_size=56, tta="flip")).depth.values
    c = predict_depth(random_vits, image, input_size=56, flip_tta=True)
    assert torch.equal(a, b) and torch.equal(a, c)


def test_multi_scale_on_a_real_model_is_chunk_invariant_and_differs_from_one_pass(random_vits):
    images = _rand(2, 40, 52, 3, seed=8)
    one = predict_depth(random_vits, images, input_size=42, chunk_size=1, multi_scale=True)
    three = predict_depth(random_vits, images, input_size=42, chunk_size=2, multi_scale=True)
    plain = predict_depth(random_vits, images, input_size=42)
    torch.testing.assert_close(one, three, atol=1e-4, rtol=1e-4)
    assert torch.isfinite(one).all() and not torch.allclose(one, plain, atol=1e-4)
    # the merge is anchored to the base view: same scale, closely correlated
    corr = torch.corrcoef(torch.stack([one.flatten(), plain.flatten()]))[0, 1]
    assert corr > 0.9


def test_metric_model_multi_scale_stays_in_metres(random_metric_vits):
    image = _rand(1, 40, 52, 3, seed=9)
    plain = predict_depth(random_metric_vits, image, input_size=56)
    merged = predict_depth(random_metric_vits, image, input_size=56, multi_scale=True)
    assert torch.isfinite(merged).all() and (merged > 0).all() and (merged <= 20.0 + 1e-4).all()
    assert abs(float(merged.mean()) / float(plain.mean()) - 1) < 0.5  # metres, not a rescaled map


def test_out_of_memory_halving_keeps_every_frame_with_views(monkeypatch):
    images = _rand(5, 30, 30, 3, seed=10)
    engine = FieldEngine()
    expected = predict_depth(engine, images, input_size=42, chunk_size=1, multi_scale=True)
    real = inference._forward_chunk
    sizes = []

    def limited(m, chunk, net_size, flip_tta, first_index, **views):
        sizes.append(chunk.shape[0])
        assert views["views"] == tuple(view_sizes(net_size))
        if chunk.shape[0] > 2:
            raise torch.OutOfMemoryError("simulated")
        return real(m, chunk, net_size, flip_tta, first_index, **views)

    monkeypatch.setattr(inference, "_forward_chunk", limited)
    got = predict_depth(engine, images, input_size=42, chunk_size=5, multi_scale=True)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
    assert sizes[:2] == [5, 2] and sum(s for s in sizes if s <= 2) == 5


def test_memory_and_automatic_chunks_count_the_larger_view(random_vits, monkeypatch):
    plain, multi = EstimateOptions(), EstimateOptions(tta="multi_scale")
    assert multi.work_net_size(480, 640) == (644, 854) and plain.work_net_size(480, 640) == (518, 686)
    assert multi.memory_required(random_vits, 1, 480, 640) > plain.memory_required(random_vits, 1, 480, 640)
    flip = EstimateOptions(tta="multi_scale_flip")
    assert flip.memory_required(random_vits, 1, 480, 640) == 2 * multi.memory_required(random_vits, 1, 480, 640)
    seen = []
    monkeypatch.setattr(inference, "auto_chunk_size", lambda m, net, image, flip=False: seen.append((net, flip)) or 1)
    predict_depth(random_vits, _rand(1, 30, 40, 3), input_size=56, multi_scale=True, flip_tta=True)
    assert seen == [(view_sizes(network_size(30, 40, 56))[-1], True)]


# ------------------------------------------------------------------------------------------------ bad input
def test_multi_scale_below_the_minimum_size_is_a_clear_error():
    with pytest.raises(ValueError, match=f"input_size >= {MIN_MULTI_SCALE_INPUT_SIZE}"):
        EstimateOptions(input_size=28, tta="multi_scale")
    EstimateOptions(input_size=MIN_MULTI_SCALE_INPUT_SIZE, tta="multi_scale")
    EstimateOptions(input_size=28, tta="flip")  # flip has no minimum
    with pytest.raises(ValueError, match="keep_aspect"):  # native mode on a tiny image: no smaller view
        predict_depth(FieldEngine(), _rand(1, 20, 20, 3), resolution="native", multi_scale=True)


def test_multi_scale_above_the_patch_limit_names_the_largest_input_size():
    with pytest.raises(ValueError, match=r"use input_size (\d+) or less for this image") as info:
        predict_depth(FieldEngine(), _rand(1, 100, 100, 3), input_size=MAX_INPUT_SIZE, multi_scale=True)
    fits = int(re.search(r"use input_size (\d+)", str(info.value)).group(1))
    assert fits < MAX_INPUT_SIZE
    small, large = view_sizes(network_size(100, 100, fits))  # the size it names does work
    assert large[0] > network_size(100, 100, fits)[0]


def test_multi_scale_with_tiles_is_a_clear_error_and_flip_with_tiles_runs(random_vits):
    with pytest.raises(ValueError, match="tiled"):
        EstimateOptions(resolution="tiled", tta="multi_scale")
    with pytest.raises(ValueError, match="tiled"):
        EstimateOptions(tta="multi_scale").with_(resolution="tiled")
    options = EstimateOptions(resolution="tiled", tta="flip", input_size=28, tile_size=28, tile_overlap=8)
    assert estimate(random_vits, _rand(1, 40, 60, 3), options).depth.values.shape == (1, 40, 60)


@pytest.mark.parametrize("bad", ["multi", "", None, True])
def test_unknown_tta_mode_is_refused(bad):
    with pytest.raises(ValueError, match="tta mode"):
        EstimateOptions(tta=bad)


# ------------------------------------------------------------------------------------------------ CLI
def test_cli_tta_option_and_the_old_flag(capsys):
    from dav2_core.cli.args import build_parser, parse_options

    assert parse_options(["a.png"]).estimate.tta == "none"
    assert parse_options(["a.png", "--tta", "multi_scale"]).estimate.tta == "multi_scale"
    assert parse_options(["a.png", "--flip-tta"]).estimate.tta == "flip"
    assert parse_options(["a.png", "--flip-tta", "--tta", "multi_scale"]).estimate.tta == "multi_scale_flip"
    assert "6.7x compute" in build_parser().format_help().replace("\n", " ").replace("  ", " ")
    for bad, message in [
        (["--tta", "multi_scale", "--input-size", "28"], "input_size >= 42"),
        (["--tta", "multi_scale", "--tiles", "4"], "tiled"),
        (["--tta", "sideways"], "invalid choice"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            parse_options(["a.png", *bad])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_batch_fingerprint_of_jobs_without_tta_is_unchanged(tmp_path):
    """A dav2 batch job started before the tta option resumes: tta 'none' is left out of its fingerprint."""
    from dav2_core.batch.job import BatchJob
    from dav2_core.cli.args import parse_options

    weights = {"sha256": "0" * 64}  # a weights_record; the model's hash is not what this test is about
    plain = BatchJob(parse_options([str(tmp_path), "-o", str(tmp_path / "out")])).fingerprint(weights)
    assert "tta" not in plain["estimate"] and plain["estimate"]["flip_tta"] is False
    multi_options = parse_options([str(tmp_path), "-o", str(tmp_path / "o"), "--tta", "multi_scale"])
    multi = BatchJob(multi_options).fingerprint(weights)
    assert multi["estimate"]["tta"] == "multi_scale"
