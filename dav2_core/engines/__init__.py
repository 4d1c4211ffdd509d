"""Inference engines: one small protocol that every backend implements (see :mod:`.base`).

``torch`` (the :class:`~dav2_core.model.DepthAnythingV2` module itself, adapted by :func:`as_engine`) is
always there; ONNX Runtime / OpenVINO / TensorRT engines are optional extras.
"""

from .base import Engine, EngineBase, as_engine, describe, is_video_model, single_image_refusal

__all__ = ["Engine", "EngineBase", "as_engine", "describe", "is_video_model", "single_image_refusal"]
