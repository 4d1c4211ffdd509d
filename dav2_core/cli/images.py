"""The CLI's image path: images grouped by size, run batch by batch through the shared estimate pipeline.

Per image ``<stem>``: ``<stem>_depth.png`` (16-bit grey, near = white), ``<stem>_depth_color.png`` (unless
``--no-color``) and with ``--npy`` ``<stem>_depth.npy`` (raw float32 [H,W]). Only one batch is decoded at
a time; every output is named after its input, so the processing order does not matter.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from .. import io
from ..pipeline import estimate
from .args import CliOptions
from .common import Report, batch_size, colour


def _write_outputs(out_dir: Path, item: io.InputFile, raw: np.ndarray | None, norm01: np.ndarray,
                   colour_rgb: np.ndarray | None) -> None:
    """``<stem>_depth.png`` (16-bit), ``_depth_color.png`` if ``colour_rgb``, ``_depth.npy`` if ``raw``."""
    base = out_dir / item.out_stem
    io.write_png(base.with_name(base.name + "_depth.png"), io.to_uint16(norm01))
    if colour_rgb is not None:
        io.write_png(base.with_name(base.name + "_depth_color.png"), colour_rgb)
    if raw is not None:
        io.write_npy(base.with_name(base.name + "_depth.npy"), raw)


def _run_batch(model: Any, options: CliOptions, out_dir: Path, items: list[io.InputFile],
               pixels: list[np.ndarray], report: Report) -> None:
    """One forward pass for same-size images, then their outputs (normalised on the model's device)."""
    result = estimate(model, torch.from_numpy(np.stack(pixels)), options.estimate.with_(chunk_size=len(pixels)),
                      output_device=None)
    colours = colour(result.normalized, options) if options.color else None
    raw = result.depth.values.cpu().numpy() if options.npy else None
    norm = result.normalized.cpu().numpy()
    for i, item in enumerate(items):
        _write_outputs(out_dir, item, None if raw is None else raw[i], norm[i], None if colours is None else colours[i])
        report.images_done += 1


def _probe_sizes(items: list[io.InputFile], report: Report) -> tuple[list[io.InputFile], list[tuple[int, int]]]:
    """(readable items, their (H, W)) from the headers; unreadable files are reported and dropped."""
    readable, sizes = [], []
    for item in items:
        size = io.probe_image_size(item.path)
        if size is None:  # a header Pillow cannot parse: let OpenCV decide
            try:
                size = io.read_image(item.path).shape[:2]
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
                for index in group[start:start + batch]:
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
