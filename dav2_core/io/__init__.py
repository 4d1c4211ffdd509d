"""File input/output for the CLI: finding inputs, reading images, atomic writes (videos: :mod:`dav2_core.video`).

One concern per module:

* :mod:`.inputs`: input discovery (files and folders -> InputFiles), output names (``OUTPUT_SUFFIXES``).
* :mod:`.images`: image reading under the pixel limit (``MAX_IMAGE_PIXELS``), corrupt-JPEG checks.
* :mod:`.writing`: atomic writes through owner-marked temporaries, stale-temporary clean-up, uint8/16 output.

The names below are re-exported, so ``from dav2_core import io; io.read_image(...)`` works as before the split.
Patch a name in the module that defines it (e.g. ``io.writing``).
"""

from .images import (
    MAX_IMAGE_PIXELS,
    ImageReadError,
    ImageTooLargeError,
    check_pixels,
    group_by_size,
    open_image,
    probe_image_size,
    read_image,
)
from .inputs import (
    IMAGE_EXTENSIONS,
    OUTPUT_SUFFIXES,
    VIDEO_EXTENSIONS,
    InputError,
    InputFile,
    InputKind,
    collect_inputs,
    input_kind,
    is_own_output,
    output_path,
    unique_output_stems,
)
from .writing import (
    DEAD_OWNER_GRACE,
    STALE_AFTER,
    TEMP_MARK,
    atomic_path,
    atomic_write,
    check_writable,
    clean_stale_temps,
    temp_prefix,
    to_uint8,
    to_uint16,
    write_npy,
    write_png,
)

__all__ = [
    "DEAD_OWNER_GRACE",
    "IMAGE_EXTENSIONS",
    "MAX_IMAGE_PIXELS",
    "OUTPUT_SUFFIXES",
    "STALE_AFTER",
    "TEMP_MARK",
    "VIDEO_EXTENSIONS",
    "ImageReadError",
    "ImageTooLargeError",
    "InputError",
    "InputFile",
    "InputKind",
    "atomic_path",
    "atomic_write",
    "check_pixels",
    "check_writable",
    "clean_stale_temps",
    "collect_inputs",
    "group_by_size",
    "input_kind",
    "is_own_output",
    "open_image",
    "output_path",
    "probe_image_size",
    "read_image",
    "temp_prefix",
    "to_uint16",
    "to_uint8",
    "unique_output_stems",
    "write_npy",
    "write_png",
]
