"""The official Video Depth Anything code as a test oracle, from ../shared/vendor (never copied into the pack).

``official_vda(encoder, seed, ...)`` extracts ``Video-Depth-Anything-<commit>.tar.gz`` once into a cache folder
(``$DAV2_TEST_CACHE`` or the system temp folder), imports its ``video_depth_anything`` package (offline
``video_depth`` or online ``video_depth_stream``) and returns the official model holding our seeded random
VDA weights. Tests calling it skip with the reason when the vendor folder or the official code's imports
(einops, easydict, torchvision: tools/requirements-test.txt) are missing.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import sys
import types
import tarfile
import tempfile
from pathlib import Path

import torch

from dav2_core.checkpoints.random_init import random_state_dict
from dav2_core.variants import ENCODERS

ROOT = Path(__file__).resolve().parents[2]
VENDOR = Path(os.environ.get("DAV2_SHARED_DIR", ROOT.parent / "shared")) / "vendor"
TARBALL = "Video-Depth-Anything-4f5ae23.tar.gz"


class OracleUnavailable(RuntimeError):
    """The official code cannot be used here (the message says why)."""


def unavailable_reason() -> str | None:
    """Why the official code cannot run here, or None."""
    tarball = VENDOR / TARBALL
    if not tarball.is_file():
        return f"official Video Depth Anything code not found at {tarball} (../shared/vendor absent)"
    for module in ("einops", "easydict", "torchvision", "cv2"):
        if importlib.util.find_spec(module) is None:
            return f"the official Video Depth Anything code imports {module}, which is not installed"
    return None


def official_root() -> Path:
    """The extracted official repository (its folder holds ``video_depth_anything/`` and ``utils/``); under
    pytest a missing tarball or dependency skips the test, elsewhere it raises :class:`OracleUnavailable`."""
    reason = unavailable_reason()
    if reason is not None:
        if "pytest" in sys.modules:
            import pytest

            pytest.skip(reason)
        raise OracleUnavailable(reason)
    tarball = VENDOR / TARBALL
    cache = Path(os.environ.get("DAV2_TEST_CACHE", tempfile.gettempdir())) / f"dav2-oracle-{TARBALL[:-7]}"
    root = cache / "Video-Depth-Anything"
    if not (root / "video_depth_anything" / "video_depth.py").is_file():
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=cache.parent))
        try:
            with tarfile.open(tarball) as archive:
                archive.extractall(staging, filter="data")
            cache.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(staging / "Video-Depth-Anything", root)
            except OSError:  # another process extracted it first
                if not (root / "video_depth_anything" / "video_depth.py").is_file():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return root


def official_module(streaming: bool = False):
    """The official ``video_depth_anything.video_depth`` (offline) or ``.video_depth_stream`` (online) module."""
    root = str(official_root())
    # The official code imports a top-level ``utils`` package; ComfyUI (loaded in-process by the comfy tier of the
    # same pytest run) has one too. Import with the official one first on the path, then give ComfyUI's back.
    foreign = {
        k: m
        for k, m in sys.modules.items()
        if (k == "utils" or k.startswith("utils.")) and not str(getattr(m, "__file__", "") or "").startswith(root)
    }
    for key in foreign:
        del sys.modules[key]
    # Its utils/ has no __init__.py (a namespace package), which any utils.py elsewhere on sys.path would
    # shadow: register it as the package explicitly.
    package = types.ModuleType("utils")
    package.__path__ = [os.path.join(root, "utils")]
    sys.modules["utils"] = package
    sys.path.insert(0, root)
    try:
        return importlib.import_module(
            "video_depth_anything.video_depth_stream" if streaming else "video_depth_anything.video_depth"
        )
    finally:
        sys.path.remove(root)
        for key in [k for k in sys.modules if k == "utils" or k.startswith("utils.")]:
            if key not in foreign:
                sys.modules[f"_dav2_official_{key}"] = sys.modules.pop(key)  # keep it alive, out of the way
        sys.modules.update(foreign)


def official_vda(
    encoder: str = "vits", seed: int = 0, metric: bool = False, streaming: bool = False
) -> torch.nn.Module:
    """The official VideoDepthAnything (eval, CPU) holding ``random_state_dict(encoder, seed, 'vda')``."""
    spec = ENCODERS[encoder]
    cls = official_module(streaming).VideoDepthAnything
    kwargs = {} if streaming else {"metric": metric}
    model = cls(encoder=encoder, features=spec.features, out_channels=list(spec.out_channels), **kwargs)
    model.load_state_dict(random_state_dict(encoder, seed, "vda"), strict=True)
    return model.eval()
