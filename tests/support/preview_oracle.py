"""The browser's reading of the packed 16-bit depth preview (``web/preview``), in numpy: the test oracle for
``nodes/preview.pack_depth_u16``."""

from __future__ import annotations

import numpy as np

#: The 16-bit code of the top of the range (nodes/preview.Q_MAX; the tests check they agree).
Q_MAX = 0xFFFF


def unpack_depth_u16(rgb: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Inverse of ``pack_depth_u16``: [H,W,3] uint8 RGB -> [H,W] float64 depth (NaN where B = 255)."""
    q = rgb[..., 0].astype(np.float64) * 256.0 + rgb[..., 1]
    d = lo + q / Q_MAX * (hi - lo)
    return np.where(rgb[..., 2] == 255, np.nan, d)
