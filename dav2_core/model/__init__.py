"""The Depth Anything V2 network (DINOv2 ViT encoder + DPT decoder)."""

from .depth_anything import DepthAnythingV2

__all__ = ["DepthAnythingV2"]
