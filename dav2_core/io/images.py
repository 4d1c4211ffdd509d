"""Image reading under the pack's pixel limit: :func:`open_image` (header only), :func:`read_image` (decode),
refusing decompression bombs (:data:`MAX_IMAGE_PIXELS`) and corrupt JPEG data.

Layout: images are returned as [H,W,3] float32 RGB in 0..1 (numpy).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from collections.abc import Iterator

import numpy as np


class ImageReadError(ValueError):
    """An image file that cannot be decoded."""


_ROTATED_ORIENTATIONS = {5, 6, 7, 8}  # EXIF orientations that swap width and height


#: Largest image the pack decodes, in pixels: 16384 x 16384 (268 MP; a 96 MP photo for tiled depth is well
#: within). A file above it is refused before any pixel is decoded (a "decompression bomb": a small PNG can
#: claim 100000 x 100000 pixels). It replaces Pillow's own limit (a "DOS attack" warning from 89 MP, an error
#: from 179 MP) while we read, and also bounds what OpenCV decodes.
MAX_IMAGE_PIXELS = 1 << 28


class ImageTooLargeError(ImageReadError):
    """An image whose size (as its header states) exceeds :data:`MAX_IMAGE_PIXELS`; ``reason`` is the message
    without the path, for callers that name the file their own way."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.reason = reason


def check_pixels(width: int, height: int, path: str | os.PathLike[str]) -> None:
    """ImageTooLargeError when an image's size exceeds :data:`MAX_IMAGE_PIXELS`."""
    if width * height > MAX_IMAGE_PIXELS:
        raise ImageTooLargeError(
            path,
            f"the image is {width}x{height} pixels ({width * height / 1e6:.0f} MP); the limit is "
            f"{MAX_IMAGE_PIXELS / 1e6:.0f} MP (e.g. 16384x16384), so it is not decoded. Scale it down first",
        )


@contextlib.contextmanager
def open_image(path: str | os.PathLike[str]) -> Iterator[object]:
    """Pillow's lazy open (the header only) under our pixel limit instead of Pillow's: yields the image;
    ImageReadError above :data:`MAX_IMAGE_PIXELS`; Pillow's own errors (OSError, ValueError) pass through."""
    from PIL import Image  # matplotlib's own dependency; lazy so plain engine users do not import it

    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # Pillow's check runs in open(); ours follows at once, before any decoding
    try:
        image = Image.open(path)
    finally:
        Image.MAX_IMAGE_PIXELS = saved
    with image:
        check_pixels(*image.size, path)
        yield image


def probe_image_size(path: Path) -> tuple[int, int] | None:
    """(height, width) of an image as it will be decoded (EXIF rotation applied), from its header only.

    Uses Pillow's lazy open (no pixel decoding). None when Pillow cannot read the header; ImageReadError
    when the header claims more than :data:`MAX_IMAGE_PIXELS`.
    """
    try:
        with open_image(path) as image:
            width, height = image.size
            if image.getexif().get(0x0112) in _ROTATED_ORIENTATIONS:
                width, height = height, width
    except ImageReadError:
        raise
    except (OSError, ValueError, SyntaxError):  # PIL raises these for unknown/corrupt headers
        return None
    return height, width


def read_image(path: Path) -> np.ndarray:
    """Decode an image file -> [H,W,3] float32 RGB in 0..1.

    8- and 16-bit files keep their precision (16-bit / 65535); grey is repeated to RGB, alpha dropped,
    EXIF rotation applied (OpenCV's IMREAD_COLOR rules). Float TIFFs are clipped to 0..1, NaN -> 0.
    Raises ImageReadError naming the file when it cannot be decoded, is larger than
    :data:`MAX_IMAGE_PIXELS`, or is a JPEG with corrupt data (see :func:`_check_jpeg_data`): OpenCV would decode those with grey blocks and only a warning.
    """
    import cv2  # lazy, like every OpenCV use in the engine: ~32 MB resident that a server pays only once used

    try:
        data = np.fromfile(path, dtype=np.uint8)  # works with non-ASCII paths, unlike cv2.imread on Windows
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot read the file ({exc.strerror or exc})") from None
    probe_image_size(path)  # ImageReadError above MAX_IMAGE_PIXELS, before OpenCV decodes anything
    if data[:2].tobytes() == _JPEG_START:
        _check_jpeg_data(data, path)  # before OpenCV, which would decode a damaged JPEG with a warning
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH) if data.size else None
    if bgr is None:
        raise ImageReadError(f"{path}: not a readable image (empty, truncated or not an image file)")
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    if rgb.dtype == np.uint8:
        return rgb.astype(np.float32) / np.float32(255.0)
    if rgb.dtype == np.uint16:
        return rgb.astype(np.float32) / np.float32(65535.0)
    return np.clip(np.nan_to_num(rgb.astype(np.float32), nan=0.0), 0.0, 1.0)


_JPEG_START = b"\xff\xd8"
#: libjpeg errors about features a JPEG decoder may lack (not about damage): such files are left to OpenCV.
_JPEG_UNSUPPORTED = (
    "Unsupported JPEG process",
    "Unsupported JPEG data precision",
    "Unsupported color conversion",
    "not supported",
    "omitted at compile time",
    "Not implemented",
    "Insufficient memory",
)


def _check_jpeg_data(data: np.ndarray, path: Path) -> None:
    """Raise ImageReadError when a JPEG's compressed data is corrupt.

    libjpeg treats damaged entropy-coded data ("Corrupt JPEG data: premature end of data segment",
    invalid markers) as a *warning*: OpenCV and Pillow decode such a file, with the rest of the image
    grey, and Pillow only fails for some of them. ``simplejpeg`` (libjpeg-turbo) in strict mode stops at
    the first warning. A greyscale decode is enough (every coefficient is still entropy-decoded): a few
    ms per megapixel.
    """
    import simplejpeg  # lazy: only the CLI reads image files

    try:
        simplejpeg.decode_jpeg(data, colorspace="GRAY", fastdct=True, fastupsample=True, strict=True)
    except ValueError as exc:
        if any(text in str(exc) for text in _JPEG_UNSUPPORTED):
            return
        raise ImageReadError(
            f"{path}: corrupt JPEG data ({exc}); decoding it would give an image that is partly grey"
        ) from None


def group_by_size(sizes: list[tuple[int, int]]) -> list[list[int]]:
    """Indices grouped by equal (H, W), groups in order of first appearance, indices ascending in each."""
    groups: dict[tuple[int, int], list[int]] = {}
    for index, size in enumerate(sizes):
        groups.setdefault(size, []).append(index)
    return list(groups.values())
