"""dav2_core: an exact, self-contained Depth Anything V2 engine (no ComfyUI imports)."""

from .depth import DepthMap
from .model import DepthAnythingV2, VideoDepthAnything
from .variants import ENCODERS, VARIANTS, get_variant

__all__ = [
    "DepthAnythingV2",
    "DepthMap",
    "ENCODERS",
    "VARIANTS",
    "VideoDepthAnything",
    "get_variant",
    "load_model",
    "predict_depth",
]


def __getattr__(name: str):
    # Lazy: loading pulls in checkpoint/Hub code that plain model users do not need.
    if name == "load_model":
        from .loading import load_model

        return load_model
    if name == "predict_depth":
        from .inference import predict_depth

        return predict_depth
    raise AttributeError(name)
