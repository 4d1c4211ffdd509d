"""Guided-filter refinement and flip-TTA merging."""

from __future__ import annotations

import cv2
import pytest
import torch
import torch.nn.functional as F

from dav2_core.effects.refine import box_mean, guided_filter
from dav2_core.inference import flip_tta_merge


def test_box_mean_matches_avg_pool_with_clipped_borders():
    x = torch.rand(2, 3, 17, 23)
    ref = F.avg_pool2d(x, 7, stride=1, padding=3, count_include_pad=False)
    assert torch.allclose(box_mean(x, 3).float(), ref, atol=1e-6)


def test_flat_guide_reduces_to_mean_of_means():
    depth = torch.rand(1, 20, 30)
    guide = torch.full((1, 20, 30, 3), 0.5)
    out = guided_filter(guide, depth, radius=2, eps=1e-3)
    assert torch.allclose(out.double(), box_mean(box_mean(depth, 2), 2), atol=1e-5)


def test_edges_follow_the_guide_and_flat_regions_are_smoothed():
    h, w = 40, 60
    g = torch.Generator().manual_seed(0)
    guide = torch.zeros(1, h, w, 3)
    guide[:, :, 30:] = 1.0
    clean = torch.where(torch.arange(w) < 30, 1.0, 3.0).expand(1, h, w)
    noisy = clean + 0.1 * torch.randn(1, h, w, generator=g)
    out = guided_filter(guide, noisy, radius=4, eps=1e-3)
    flat = (slice(None), slice(5, -5), slice(5, 25))
    assert float((out - clean)[flat].std()) < float((noisy - clean)[flat].std()) / 3
    edge = (slice(None), slice(5, -5), slice(28, 32))  # two pixels either side of the step
    assert float((out - clean)[edge].abs().max()) < 0.1
    box = box_mean(noisy, 4).float()  # a depth-only blur of the same radius smears the step
    assert float((box - clean)[edge].abs().max()) > 0.5


def test_linear_in_depth():
    guide = torch.rand(2, 16, 24, 3)
    d = torch.rand(2, 16, 24)
    a = guided_filter(guide, 2.0 * d + 3.0, radius=3, eps=1e-2)
    b = 2.0 * guided_filter(guide, d, radius=3, eps=1e-2) + 3.0
    assert torch.allclose(a, b, atol=1e-4)


def test_pairing_rules():
    guide = torch.rand(2, 16, 24, 3)
    out = guided_filter(guide, torch.rand(1, 16, 24), radius=2)
    assert out.shape == (2, 16, 24)
    with pytest.warns(UserWarning, match="resizing the depth"):
        assert guided_filter(guide, torch.rand(2, 8, 12), radius=2).shape == (2, 16, 24)
    with pytest.raises(ValueError, match="image batch has 2 images but depth batch has 3"):
        guided_filter(guide, torch.rand(3, 16, 24))


@pytest.mark.parametrize(
    "kwargs, message", [({"radius": 0}, "radius"), ({"radius": 1.5}, "radius"), ({"eps": 0.0}, "eps")]
)
def test_bad_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        guided_filter(torch.rand(1, 8, 8, 3), torch.rand(1, 8, 8), **kwargs)


def test_bad_depth():
    with pytest.raises(ValueError, match=r"\[B,H,W\]"):
        guided_filter(torch.rand(1, 8, 8, 3), torch.rand(8, 8))


def test_flip_tta_merge():
    d = torch.rand(2, 5, 7)
    # the flipped image's prediction, un-flipped, agrees with the original: the merge keeps it
    assert torch.allclose(flip_tta_merge(d, d.flip(-1)), d)
    other = torch.rand(2, 5, 7)
    assert torch.allclose(flip_tta_merge(d, other), (d + other.flip(-1)) / 2)
    with pytest.raises(ValueError, match="same shape"):
        flip_tta_merge(d, torch.rand(2, 5, 6))


def test_real_photo_edges(shared_images):
    photo = cv2.cvtColor(cv2.imread(str(shared_images[0])), cv2.COLOR_BGR2RGB)
    photo = cv2.resize(photo, (128, 96), interpolation=cv2.INTER_AREA)
    img = torch.from_numpy(photo).float().div(255)[None]
    grey = img.mean(-1)
    clean = (grey > grey.median()).float() * 2.0 + 1.0  # depth discontinuities exactly on image edges
    noisy = clean + 0.2 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    out = guided_filter(img, noisy, radius=2, eps=1e-4)
    box = box_mean(noisy, 2).float()
    err = float((out - clean).abs().mean())
    assert err < 0.8 * float((noisy - clean).abs().mean())  # denoised (measured ~0.70)
    assert err < 0.6 * float((box - clean).abs().mean())  # and the photo's edges kept (measured ~0.53)
