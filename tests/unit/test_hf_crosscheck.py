"""Cross-check the HF-transformers key conversion against ``transformers.DepthAnythingForDepthEstimation``.

Same weights in both layouts, same 518x518 input -> same depth (max abs diff <= 1e-4 x output range).
518 is the size both position-embedding resizes agree on; HF resizes differently on other sizes by design.
"""

from __future__ import annotations

import pytest
import torch

from checkpoint_factory import hf_config, make_state_dict, write_checkpoint
from dav2_core.checkpoints import load_checkpoint, to_official_keys

#: The slow tier (builds transformers models); make test-fast leaves it out.
pytestmark = pytest.mark.slow

transformers = pytest.importorskip("transformers")
SIZE = 518


def _random_hf_model(kind: str = "relative", max_depth: float | None = None, seed: int = 0):
    """A vits HF model with seeded weights at realistic scales (HF's own init gives an almost constant map)."""
    model = transformers.DepthAnythingForDepthEstimation(hf_config("vits", kind, max_depth)).eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            if name.endswith("lambda1") or "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.1 * noise)  # layer scale, LayerNorm gains
            elif "embeddings" in name and "projection" not in name:
                p.copy_(0.02 * noise)  # cls / mask tokens, position embeddings
            elif p.ndim == 1:
                p.copy_(0.05 * noise)  # biases
            else:
                p.copy_(noise / p[0].numel() ** 0.5)  # unit-variance activations
    return model


def _image(seed: int = 1) -> torch.Tensor:
    return torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def _assert_same_depth(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    assert ours.shape == theirs.shape == (1, SIZE, SIZE)
    span = float(theirs.max() - theirs.min())
    assert span > 0 and (theirs > 0).float().mean() > 0.5, "degenerate reference depth"
    diff = float((ours - theirs).abs().max())
    assert diff <= 1e-4 * span, f"max abs diff {diff:.3g} > 1e-4 x range {span:.3g}"


def test_random_hf_model_converts_to_the_official_model():
    hf = _random_hf_model()
    sd, layout = to_official_keys(hf.state_dict())  # transformers' in-memory names (q/k/v split)
    assert layout == "hf"
    from depth_anything_v2.dpt import DepthAnythingV2

    official = DepthAnythingV2("vits", 64, [48, 96, 192, 384]).eval()
    official.load_state_dict(sd, strict=True)
    x = _image()
    with torch.inference_mode():
        _assert_same_depth(official(x), hf(pixel_values=x).predicted_depth)


def test_factory_hf_file_is_what_transformers_loads(tmp_path):
    """The factory's HF file (official -> HF inverse) loads cleanly in transformers with the same weights.

    Together with the forward check above (conversion preserves the computation) this pins the factory's
    HF files to the official weights, without another pair of 518x518 forwards.
    """
    path = write_checkpoint(tmp_path / "model.safetensors", "vits", "hf-safetensors", seed=0)
    hf, loading = transformers.DepthAnythingForDepthEstimation.from_pretrained(tmp_path, output_loading_info=True)
    assert not any(loading[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), loading
    from_transformers, _ = to_official_keys(hf.state_dict())
    ref = make_state_dict("vits", seed=0)
    assert set(from_transformers) == set(ref)
    assert all(torch.equal(from_transformers[k], ref[k]) for k in ref)
    _, info = load_checkpoint(path)
    assert (info.encoder, info.format) == ("vits", "hf-safetensors")


def test_metric_save_pretrained_folder_matches_our_metric_model(tmp_path):
    """A real save_pretrained folder (on-disk HF names + config.json) of a metric model -> dav2_core's model."""
    try:
        from dav2_core.model import DepthAnythingV2
    except ImportError:
        pytest.skip("dav2_core.model not there yet")
    hf = _random_hf_model("metric", 20, seed=3)
    hf.save_pretrained(tmp_path)
    sd, info = load_checkpoint(tmp_path)
    assert (info.encoder, info.kind, info.max_depth, info.kind_source) == ("vits", "metric", 20.0, "config.json")
    ours = DepthAnythingV2(info.encoder, max_depth=info.max_depth).eval()
    ours.load_state_dict(sd, strict=True)
    x = _image(3)
    with torch.inference_mode():
        theirs = hf(pixel_values=x).predicted_depth
        assert float(theirs.max()) <= 20.0
        _assert_same_depth(ours(x), theirs)
