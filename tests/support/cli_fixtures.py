"""Fixtures for running the ``dav2`` CLI in-process from any tier: a models folder with the vits variant file
(seeded random weights) and one torch thread (tiny forwards run fastest on one; CPU sums depend on it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from checkpoint_factory import write_checkpoint

#: Tiny network input and CPU, quiet: a forward pass takes milliseconds.
SMALL = ["--input-size", "28", "--device", "cpu", "-q"]


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models folder holding the vits variant file (seeded random weights, official .pth format)."""
    folder = tmp_path_factory.mktemp("models")
    write_checkpoint(folder / "depth_anything_v2_vits.pth", "vits", "official-pth", seed=0)
    return folder


@pytest.fixture(scope="module", autouse=True)
def one_cpu_thread():
    """One torch thread for the module (and OMP_NUM_THREADS=1 for the CLI), restored afterwards."""
    saved_env, saved_threads = os.environ.get("OMP_NUM_THREADS"), torch.get_num_threads()
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved_threads)
    if saved_env is None:
        os.environ.pop("OMP_NUM_THREADS", None)
    else:
        os.environ["OMP_NUM_THREADS"] = saved_env
