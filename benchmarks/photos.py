"""The benchmark photos: ../shared, the timed photo, reading it as the official ``infer_image`` input.

Benchmarks are scripts, not tests: every number they print comes from one run on the machine named in
their JSON (``machine`` block). Nothing here is imported by the engine.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import torch

from dav2_core import io


ROOT = Path(__file__).resolve().parents[1]
#: ../shared (real photos), overridable like the tests' fixture.
SHARED = Path(os.environ.get("DAV2_SHARED_DIR", ROOT.parent / "shared"))
#: The 640x480 NYU photo the speed targets are stated for (518x686 at the network).
DEFAULT_PHOTO = SHARED / "depth_gt" / "nyu" / "rgb" / "rgb_00000.jpg"


def read_bgr(path: Path) -> np.ndarray:
    """A photo as BGR uint8 [H,W,3] (the official ``infer_image`` input)."""
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"cannot read the photo {path} (missing or not an image); pass another with --photo/--images")
    return bgr


def list_photos(folder: Path) -> list[Path]:
    """The photos in a folder (``io.IMAGE_EXTENSIONS``, the CLI's image files), sorted by name."""
    if not folder.is_dir():
        raise ValueError(f"photo folder {folder} does not exist; pass --images DIR (e.g. ../shared/images)")
    photos = sorted(p for p in folder.iterdir() if io.input_kind(p) == "image")
    if not photos:
        raise ValueError(
            f"no photos ({' '.join(io.IMAGE_EXTENSIONS)}) in {folder}; pass --images DIR with at least one"
        )
    return photos


def resolve_photo(path: Path | None) -> Path:
    """The timed photo: ``path`` or the default 640x480 NYU frame, with a clear error when absent."""
    photo = path or DEFAULT_PHOTO
    if not photo.is_file():
        raise ValueError(f"photo {photo} not found; pass --photo PATH (the targets are stated for a 640x480 photo)")
    return photo


def add_photo_arguments(parser: argparse.ArgumentParser, photo_help: str, images_help: str | None = None) -> None:
    """``--photo PATH`` (default: :data:`DEFAULT_PHOTO`, see :func:`resolve_photo`) and, with ``images_help``,
    ``--images DIR`` (the accuracy photos; default: the timed photo): what :func:`load_photos` reads."""
    parser.add_argument("--photo", type=Path, default=None, help=photo_help)
    if images_help is not None:
        parser.add_argument("--images", type=Path, default=None, help=images_help)


def load_photos(args: argparse.Namespace, prog: str) -> tuple[list[Path], np.ndarray]:
    """Resolve ``args.photo`` in place; return (accuracy photos: ``--images`` or the timed photo, timed photo
    as BGR). A missing photo or folder ends the script with a message naming ``prog``."""
    try:
        args.photo = resolve_photo(args.photo)
        photos = list_photos(args.images) if args.images else [args.photo]
        return photos, read_bgr(args.photo)
    except ValueError as exc:
        raise SystemExit(f"{prog}: {exc}") from None


def bgr_to_images(bgr: np.ndarray, batch: int = 1) -> torch.Tensor:
    """BGR uint8 [H,W,3] -> ComfyUI IMAGE [batch,H,W,3] float32 0..1 (the photo repeated, contiguous)."""
    rgb = torch.from_numpy(np.ascontiguousarray(bgr[..., ::-1])).float().div_(255.0)
    return rgb[None].repeat(batch, 1, 1, 1)
