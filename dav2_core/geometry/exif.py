"""A photo's EXIF focal length -> the horizontal field of view of the image as displayed (:func:`exif_fov`)."""

from __future__ import annotations

import math
import os
from typing import Any

#: Diagonal of a 36x24 mm frame: EXIF's 35 mm-equivalent focal length is scaled by it.
FULL_FRAME_DIAGONAL_MM = math.hypot(36.0, 24.0)

_EXIF_IFD = 0x8769
_ORIENTATION = 0x0112
_FOCAL_LENGTH = 0x920A
_FOCAL_35MM = 0xA405
_FOCAL_PLANE_X_RES = 0xA20E
_FOCAL_PLANE_UNIT = 0xA210
_PIXEL_X = 0xA002
_PIXEL_Y = 0xA003
_UNIT_MM = {2: 25.4, 3: 10.0, 4: 1.0, 5: 0.001}  # EXIF FocalPlaneResolutionUnit: inch, cm, mm, µm


def _positive(value: Any) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return x if math.isfinite(x) and x > 0 else None


def exif_fov(source: str | os.PathLike[str] | Any) -> tuple[float | None, str]:
    """(horizontal field of view in degrees of the image as displayed, how it was found) from a photo's EXIF,
    or (None, why not) when it has no usable focal length.

    source: a file path or an open PIL image. Uses ``FocalLengthIn35mmFilm`` (scaled by the frame diagonal),
    else ``FocalLength`` with ``FocalPlaneXResolution``/``Unit`` (the sensor's pixel pitch). EXIF rotations
    of 90 degrees (orientations 5-8) swap the axes. Never raises for a missing or broken EXIF block.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        if isinstance(source, (str, os.PathLike)):
            with Image.open(source) as image:
                width, height, exif = *image.size, image.getexif()
        else:
            width, height, exif = *source.size, source.getexif()
        sub = exif.get_ifd(_EXIF_IFD)
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as err:
        return None, f"could not read the photo's EXIF ({err})"
    rotated = exif.get(_ORIENTATION) in (5, 6, 7, 8)
    sensor_w = _positive(sub.get(_PIXEL_X)) or width
    sensor_h = _positive(sub.get(_PIXEL_Y)) or height
    across = sensor_h if rotated else sensor_w  # the displayed image's width, in sensor pixels
    f35 = _positive(sub.get(_FOCAL_35MM))
    if f35 is not None:
        f_px = f35 / FULL_FRAME_DIAGONAL_MM * math.hypot(sensor_w, sensor_h)
        fov = math.degrees(2.0 * math.atan(across / 2.0 / f_px))
        return fov, f"EXIF 35 mm-equivalent focal length {f35:g} mm: horizontal field of view {fov:.1f} degrees"
    f_mm = _positive(sub.get(_FOCAL_LENGTH))
    res = _positive(sub.get(_FOCAL_PLANE_X_RES))
    unit = _UNIT_MM.get(sub.get(_FOCAL_PLANE_UNIT, 2))
    if f_mm is not None and res is not None and unit is not None:
        f_px = f_mm * res / unit
        fov = math.degrees(2.0 * math.atan(across / 2.0 / f_px))
        return (
            fov,
            f"EXIF focal length {f_mm:g} mm on the sensor's pixel pitch: horizontal field of view {fov:.1f} degrees",
        )
    if f_mm is not None:
        return (
            None,
            f"EXIF has a focal length ({f_mm:g} mm) but no 35 mm equivalent or sensor size to turn it into a "
            "field of view",
        )
    return None, "no focal length in the photo's EXIF"
