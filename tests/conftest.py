"""Shared pytest fixtures: the ../shared data folder and a deterministic CPU setup."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DAV2_SHARED_DIR", ROOT.parent / "shared"))

torch.manual_seed(0)

# Real-ComfyUI fixtures (tests/comfy_harness.py), defined once here so the session server is shared.
from comfy_harness import comfy_inprocess, comfy_server, comfy_server_newest_frontend  # noqa: E402,F401
# The browser fixtures (tests/browser_helpers.py), shared by the browser test files.
from browser_helpers import browser, checkpoints, console, page, ui, ui_server  # noqa: E402,F401


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared (real photos + measured depth); tests that need it skip when it is absent."""
    if not (SHARED / "images").is_dir():
        pytest.skip(f"shared data folder not found at {SHARED} (set DAV2_SHARED_DIR); real-photo tests skipped")
    return SHARED


@pytest.fixture(scope="session")
def shared_images(shared_dir: Path) -> list[Path]:
    """The real photos in ../shared/images, sorted by name."""
    images = sorted((shared_dir / "images").glob("*.jpg"))
    if not images:
        pytest.skip(f"no .jpg photos in {shared_dir / 'images'}")
    return images


@pytest.fixture(scope="session")
def random_vits():
    """A seeded random-init vits DepthAnythingV2 (eval, CPU, fp32) whose depth is never all zero (the last
    bias is positive). Shared read-only: tests must not change its weights or device."""
    from dav2_core import DepthAnythingV2

    torch.manual_seed(0)
    model = DepthAnythingV2("vits").eval()
    with torch.no_grad():
        model.depth_head.scratch.output_conv2[2].bias.fill_(0.05)
    return model


@pytest.fixture(scope="session")
def random_metric_vits():
    """A seeded random-init metric vits DepthAnythingV2 (max_depth 20 m, eval, CPU, fp32). Shared read-only."""
    from dav2_core import DepthAnythingV2

    torch.manual_seed(1)
    return DepthAnythingV2("vits", max_depth=20.0).eval()
