"""The hostile tier: bad input at every trust boundary (paths, files, node inputs, routes), as an attacker on a
shared ComfyUI server would send it. Engine-only tests need nothing; node tests use the in-process ComfyUI and
the real server of the comfy tier."""

from comfy_harness import comfy_inprocess  # noqa: F401
