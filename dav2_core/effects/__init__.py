"""Depth effects on IMAGE/DEPTH tensors (no ComfyUI imports): bokeh, parallax, temporal consistency,
refinement, metric calibration, export, normals. Every function is batched and runs on the tensor's device.

Pairing rule for functions taking an IMAGE [B,H,W,3] and a DEPTH: batch lengths must match or one be 1
(reused); a depth of another height/width is resized (bilinear) to the image with a ``UserWarning``.
"""
