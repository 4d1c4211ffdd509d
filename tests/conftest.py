"""Shared pytest fixtures: the ../shared data folder and a deterministic CPU setup."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DAV2_SHARED_DIR", ROOT.parent / "shared"))

# Test helpers (checkpoint factory, clips, the ComfyUI and browser harnesses) live in tests/support/.
sys.path.insert(0, str(Path(__file__).resolve().parent / "support"))
# The graph builder the tests share with the example workflows (tools/graphs) is imported from the repository root.
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

torch.manual_seed(0)

#: Tiers by folder: each test gets its folder's marker, so `-m unit` or `-m "not browser"` selects a tier
#: (README, Development). The folder, not the file, decides: a new test file is marked by where it lives.
TIERS = ("unit", "comfy", "browser", "scripts", "hostile")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tests_dir = Path(__file__).resolve().parent
    for item in items:
        parts = Path(str(item.fspath)).resolve().relative_to(tests_dir).parts
        if len(parts) > 1 and parts[0] in TIERS:
            item.add_marker(getattr(pytest.mark, parts[0]))


# The real-ComfyUI server fixtures are shared by the comfy/ and browser/ tiers, so they are defined once here
# (one session server for both). tests/support/comfy_harness.py imports no ComfyUI until a fixture runs.
@pytest.fixture(scope="session")
def comfy_server(tmp_path_factory: pytest.TempPathFactory):
    """A real ComfyUI server (stock frontend) with this pack and the test checkpoints (comfy_harness)."""
    from comfy_harness import start_test_server

    yield from start_test_server(tmp_path_factory, "server")


@pytest.fixture(scope="session")
def comfy_server_newest_frontend(tmp_path_factory: pytest.TempPathFactory):
    """The same, serving the newest tested frontend (comfyui-frontend-package, tools/setup_comfyui.py)."""
    from comfy_harness import start_test_server_newest_frontend

    yield from start_test_server_newest_frontend(tmp_path_factory)


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
