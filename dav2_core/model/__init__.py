"""The Depth Anything V2 network (DINOv2 ViT encoder + DPT decoder) and Video Depth Anything (+ temporal head)."""

from .depth_anything import DepthAnythingV2
from .video_depth_anything import VideoDepthAnything

__all__ = ["DepthAnythingV2", "VideoDepthAnything"]
