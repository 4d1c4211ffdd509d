"""The CLI's image path: images grouped by size, run batch by batch through the shared estimate pipeline.

Per image ``<stem>``: ``<stem>_depth.png`` (16-bit grey, near = white), ``<stem>_depth_color.png`` (unless
``--no-color``), with ``--npy`` ``<stem>_depth.npy`` (raw float32 [H,W]) and with ``--exr``
``<stem>_depth.exr`` (raw float32, kind/units/model in ``<stem>_depth.exr.json``), with ``--glb``
``<stem>_depth.glb`` (a mesh textured with the photo, :mod:`dav2_core.geometry`; camera from ``--fov``, else
the photo's EXIF focal length, else 60 degrees). Only one batch is decoded
at a time; every output is named after its input, so the processing order does not matter.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from .. import geometry, io
from ..depth import DepthMap
from ..effects.export import EXR_HELP, exr_backend, save_depth
from ..pipeline import estimate
from .args import CliOptions
from .common import CliError, Report, batch_size, colour, info

#: The files written per image: output name -> suffix after ``<stem>`` (the one list; ``dav2 batch`` uses it).
OUTPUT_SUFFIXES: dict[str, str] = {
    "depth": "_depth.png",
    "color": "_depth_color.png",
    "npy": "_depth.npy",
    "exr": "_depth.exr",
    "glb": "_depth.glb",
}


def output_paths(out_dir: Path, out_stem: Path, options: CliOptions) -> dict[str, Path]:
    """The files the options write for one image (``OUTPUT_SUFFIXES`` names), primary 16-bit PNG first."""
    wanted = {"depth": True, "color": options.color, "npy": options.npy, "exr": options.exr, "glb": options.glb}
    base = out_dir / out_stem
    return {name: base.with_name(base.name + suffix) for name, suffix in OUTPUT_SUFFIXES.items() if wanted[name]}


def check_output_options(options: CliOptions) -> None:
    """CliError before any work when an asked-for output format cannot be written here (EXR codec)."""
    if options.exr and exr_backend() is None:
        raise CliError(f"--exr: {EXR_HELP}")
    if options.glb:
        try:
            import trimesh  # noqa: F401
        except ImportError:
            raise CliError("--glb writes meshes with trimesh, which is not installed: pip install trimesh") from None


def _write_glb(path: Path, depth: DepthMap, pixels: np.ndarray, source: Path, options: CliOptions) -> None:
    """The textured mesh of one image ([1,H,W] depth, [H,W,3] photo pixels); camera: --fov, EXIF, or 60."""
    if options.fov is not None:
        fov, how = options.fov, f"--fov {options.fov:g} degrees"
    else:
        fov, how = geometry.exif_fov(source)
        if fov is None:
            fov, how = geometry.DEFAULT_FOV, f"{how}: {geometry.DEFAULT_FOV:g} degrees"
    mesh = geometry.depth_to_mesh(
        depth,
        torch.from_numpy(pixels)[None],
        fov_deg=fov,
        decimation=options.glb_decimation,
        discontinuity=options.glb_discontinuity,
    )
    geometry.write_glb(path, mesh)
    info(options, f"{path.name}: {mesh.vertices.shape[0]} vertices, camera: {how}")


def _write_outputs(
    paths: dict[str, Path], depth: DepthMap | None, norm01: np.ndarray, colour_rgb: np.ndarray | None
) -> None:
    """The files of one image: 16-bit PNG, colour PNG, raw ``.npy`` / ``.exr`` of ``depth`` ([1,H,W]); the
    mesh is written by :func:`_write_glb`."""
    io.write_png(paths["depth"], io.to_uint16(norm01))
    if "color" in paths:
        io.write_png(paths["color"], colour_rgb)
    if "npy" in paths:
        io.write_npy(paths["npy"], depth.values[0].numpy())
    if "exr" in paths:
        save_depth(depth, paths["exr"], "exr")


def _run_batch(
    model: Any, options: CliOptions, out_dir: Path, items: list[io.InputFile], pixels: list[np.ndarray], report: Report
) -> None:
    """One forward pass for same-size images, then their outputs (normalised on the model's device)."""
    result = estimate(
        model, torch.from_numpy(np.stack(pixels)), options.estimate.with_(chunk_size=len(pixels)), output_device=None
    )
    colours = colour(result.normalized, options) if options.color else None
    raw = result.depth.with_values(result.depth.values.cpu()) if options.npy or options.exr or options.glb else None
    norm = result.normalized.cpu().numpy()
    for i, item in enumerate(items):
        paths = output_paths(out_dir, item.out_stem, options)
        _write_outputs(paths, None if raw is None else raw[i], norm[i], None if colours is None else colours[i])
        if "glb" in paths:
            try:
                _write_glb(paths["glb"], raw[i], pixels[i], item.path, options)
            except ValueError as exc:  # e.g. a decimation too large for this image, no valid depth
                report.fail(item.path, f"mesh not written: {exc}")
                continue
        report.images_done += 1


def probe_size(path: Path) -> tuple[int, int]:
    """(H, W) of an image as it will be decoded: from the header, else by decoding it (ImageReadError)."""
    size = io.probe_image_size(path)
    return size if size is not None else io.read_image(path).shape[:2]


def _probe_sizes(items: list[io.InputFile], report: Report) -> tuple[list[io.InputFile], list[tuple[int, int]]]:
    """(readable items, their (H, W)) from the headers; unreadable files are reported and dropped."""
    readable, sizes = [], []
    for item in items:
        try:
            size = probe_size(item.path)
        except io.ImageReadError as exc:
            report.fail(item.path, str(exc))
            continue
        sizes.append(size)
        readable.append(item)
    return readable, sizes


def process_images(model: Any, items: list[io.InputFile], options: CliOptions, out_dir: Path, report: Report) -> None:
    """Depth for every image: grouped by size, batch by batch; unreadable images are reported and skipped."""
    readable, sizes = _probe_sizes(items, report)
    with tqdm(total=len(items), unit="img", desc="images", disable=options.quiet, file=sys.stderr) as bar:
        bar.update(len(items) - len(readable))
        for group in io.group_by_size(sizes):
            height, width = sizes[group[0]]
            try:
                batch = batch_size(model, options, height, width)
            except ValueError as exc:
                for index in group:
                    report.fail(readable[index].path, str(exc))
                bar.update(len(group))
                continue
            for start in range(0, len(group), batch):
                batch_items, pixels = [], []
                for index in group[start : start + batch]:
                    item = readable[index]
                    try:
                        image = io.read_image(item.path)
                    except io.ImageReadError as exc:
                        report.fail(item.path, str(exc))
                        bar.update(1)
                        continue
                    if image.shape[:2] != (height, width):  # header and pixels disagree: run it alone
                        try:
                            _run_batch(model, options, out_dir, [item], [image], report)
                        except ValueError as exc:  # e.g. an aspect ratio too extreme for keep_aspect
                            report.fail(item.path, str(exc))
                        bar.update(1)
                        continue
                    batch_items.append(item)
                    pixels.append(image)
                if batch_items:
                    _run_batch(model, options, out_dir, batch_items, pixels, report)
                    bar.update(len(batch_items))
