"""The comfy tier: the pack loaded into ComfyUI in this process, and real ComfyUI servers (the server fixtures
are in tests/conftest.py, shared with the browser tier)."""

from collections.abc import Iterator

import pytest
import torch

from comfy_harness import comfy_inprocess  # noqa: F401


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """torch runs single-threaded for the module (modules opt in with ``pytest.mark.usefixtures``)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
