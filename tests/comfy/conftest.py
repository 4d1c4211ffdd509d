"""The comfy tier: the pack loaded into ComfyUI in this process, and real ComfyUI servers (the server fixtures
are in tests/conftest.py, shared with the browser tier)."""

from comfy_harness import comfy_inprocess  # noqa: F401
