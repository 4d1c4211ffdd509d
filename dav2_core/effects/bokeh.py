"""Depth-of-field lens blur ("bokeh"): circle of confusion from depth + occlusion-aware layered compositing.

The thin-lens circle of confusion is proportional to the difference in *disparity* (1/distance) between a
point and the focus plane, so CoC is computed on normalised disparity: the relative model output as is,
metric metres as 1/metres, min-max normalised per image to 0..1 (0 = farthest, 1 = nearest).

Pixels are split by signed CoC into layers (far side, the in-focus layer, near side). Each layer, as
premultiplied colour + alpha, is blurred with a disc kernel of its own radius (FFT convolution on the
tensor's device) and composited back to front with "over"; the result is divided by the accumulated alpha.
So a sharp foreground is never smeared into a blurred background (its pixels are not in that layer), the
background never bleeds over a sharp foreground edge (the foreground layer is composited on top,
opaque), and a blurred foreground spreads semi-transparently over what is behind it, as a real lens does.
Images are independent: they are processed in chunks (:mod:`dav2_core.chunks`), so memory is bounded by one chunk.
"""

from __future__ import annotations

import math
import warnings

import torch

from ..depth import DepthMap
from ..preprocess import check_image_batch
from ..chunks import Execution, allocate_output, run_chunked
from ._common import check_depth, normalise_per_image, pair_inputs


def disc_kernel(radius: float, device: torch.device | str = "cpu") -> torch.Tensor:
    """[2R+1, 2R+1] float32 disc of ``radius`` px with an anti-aliased 1-px rim, summing to 1."""
    r_int = int(math.ceil(radius + 0.5))
    ax = torch.arange(-r_int, r_int + 1, device=device, dtype=torch.float32)
    dist = torch.sqrt(ax[:, None] ** 2 + ax[None, :] ** 2)
    k = (radius + 0.5 - dist).clamp(0.0, 1.0)
    return k / k.sum()


def disc_blur(x: torch.Tensor, radius: float) -> torch.Tensor:
    """Blur [B,C,H,W] with a disc of ``radius`` px by FFT convolution; zero outside the image (use with
    premultiplied colour + alpha so borders renormalise). Radii below 0.5 px return ``x`` unchanged."""
    if radius < 0.5:
        return x
    k = disc_kernel(radius, x.device)
    r = k.shape[-1] // 2
    h, w = x.shape[-2:]
    size = (h + 2 * r, w + 2 * r)  # circular conv of the zero-padded input never wraps into the crop
    kpad = torch.zeros(size, device=x.device, dtype=torch.float32)
    kpad[: 2 * r + 1, : 2 * r + 1] = k
    kpad = torch.roll(kpad, shifts=(-r, -r), dims=(0, 1))  # kernel centre at (0, 0)
    spec = torch.fft.rfft2(x.float(), s=size) * torch.fft.rfft2(kpad)
    return torch.fft.irfft2(spec, s=size)[..., :h, :w]


def _focus_levels(
    disp: torch.Tensor,
    flat: torch.Tensor,
    focus_depth: float | None,
    focus_point: tuple[float, float] | None,
    is_metric: bool,
    units: str,
    first_index: int = 0,
) -> torch.Tensor:
    """[B] focus as normalised disparity 0..1 (flat images get 0, they are all in focus anyway); errors
    name images by their index in the whole batch (``first_index`` is the chunk's offset)."""
    b, h, w = disp.shape
    lo = disp.flatten(1).amin(1)
    hi = disp.flatten(1).amax(1)
    rng = torch.where(flat, torch.ones_like(hi), hi - lo)
    if focus_point is not None:
        x, y = focus_point
        if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            raise ValueError(
                f"focus_point {focus_point} is outside the image; x and y are fractions of width and height in 0..1"
            )
        px, py = round(x * (w - 1)), round(y * (h - 1))
        f = disp[:, py, px]
    else:
        fd = float(focus_depth)  # type: ignore[arg-type]
        if not math.isfinite(fd) or (is_metric and fd <= 0):
            raise ValueError(
                f"focus_depth must be a finite {'positive distance in m' if is_metric else 'number'}, got {fd}"
            )
        f = torch.full((b,), 1.0 / fd if is_metric else fd, device=disp.device)
        tol = 1e-6 * torch.clamp(hi.abs(), min=1.0)
        outside = ((f < lo - tol) | (f > hi + tol)) & ~flat
        if bool(outside.any()):
            i = int(outside.nonzero()[0, 0])
            if is_metric:
                near, far = 1.0 / float(hi[i]), (1.0 / float(lo[i]) if float(lo[i]) > 0 else math.inf)
                span = f"{near:.4g}..{far:.4g} {units}"
            else:
                span = f"{float(lo[i]):.4g}..{float(hi[i]):.4g} ({units})"
            raise ValueError(
                f"focus_depth {fd:g} is outside the depth range {span} of image {first_index + i}; pick a depth inside it"
                " or focus by point instead"
            )
    f_n = ((f - lo) / rng).clamp(0.0, 1.0)
    return torch.where(flat, torch.zeros_like(f_n), f_n)


def circle_of_confusion(nearness01: torch.Tensor, focus: torch.Tensor, focus_range: float) -> torch.Tensor:
    """Signed CoC [B,H,W] in -1..1 (negative = behind the focus plane, positive = in front).

    ``nearness01`` is normalised disparity 0..1, ``focus`` [B] the focus in the same units. Pixels within
    ``focus_range / 2`` of the focus are sharp (0); the CoC then grows linearly with the disparity
    difference, reaching ±1 for a difference of the full range.
    """
    diff = nearness01 - focus[:, None, None]
    half = focus_range / 2.0
    mag = ((diff.abs() - half) / (1.0 - half)).clamp(0.0, 1.0)
    return torch.sign(diff) * mag


def _bytes_per_image(height: int, width: int, max_blur_radius: float) -> int:
    """Peak working memory of one image in a chunk: ~35 float32 maps plus the FFT buffers (complex spectra
    and their workspace, 4 channels) at the padded size (~200 B/px measured on a CPU at 1024², radius 12)."""
    pad = 2 * (math.ceil(max_blur_radius + 0.5) + 1)
    return 140 * height * width + 64 * (height + pad) * (width + pad)


def _blur_chunk(
    img: torch.Tensor,
    disp: torch.Tensor,
    focus_depth: float | None,
    focus_point: tuple[float, float] | None,
    depth: DepthMap,
    max_blur_radius: float,
    focus_range: float,
    layers: int,
    first_index: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Lens blur of a chunk: img [b,H,W,3] 0..1 and inverse depth [b,H,W] on one device -> (blurred
    [b,H,W,3], CoC [b,H,W], flat [b] bool: images whose depth has no range, left sharp)."""
    n, flat = normalise_per_image(disp)
    focus = _focus_levels(disp, flat, focus_depth, focus_point, depth.is_metric, depth.units, first_index)
    signed = circle_of_confusion(n, focus, focus_range)
    signed = torch.where(flat[:, None, None], torch.zeros_like(signed), signed)
    coc = signed.abs()
    if bool(flat.all()) or max_blur_radius < 0.5:
        return img, coc, flat
    per_side = (int(layers) - 1) // 2
    level = torch.sign(signed) * torch.ceil(coc * per_side)  # -K..K, 0 = in focus, far → near
    b, h, w, _ = img.shape
    premult = torch.cat([img.permute(0, 3, 1, 2), torch.ones(b, 1, h, w, device=img.device)], dim=1)
    acc = torch.zeros_like(premult)
    present = torch.unique(level).tolist()
    for q in range(-per_side, per_side + 1):
        if float(q) not in present:
            continue
        radius = 0.0 if q == 0 else (abs(q) - 0.5) / per_side * max_blur_radius
        layer = disc_blur(premult * (level == q)[:, None].to(premult.dtype), radius)
        acc = layer + (1.0 - layer[:, 3:4]) * acc
    out = acc[:, :3] / acc[:, 3:4].clamp_min(1e-6)
    return out.permute(0, 2, 3, 1).clamp(0.0, 1.0), coc, flat


def lens_blur(
    image: torch.Tensor,
    depth: DepthMap,
    focus_depth: float | None = None,
    focus_point: tuple[float, float] | None = None,
    max_blur_radius: float = 12.0,
    focus_range: float = 0.1,
    layers: int = 16,
    run: Execution | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Depth-of-field blur of an IMAGE by its DEPTH → (IMAGE [B,H,W,3] 0..1, CoC [B,H,W] 0..1).

    image: IMAGE [B,H,W,C] (uint8 or float 0..1, the ``preprocess`` rule). depth: DepthMap; its batch must
    equal the image's or be 1 (either side of length 1 is reused); a depth of another size is resized to
    the image with a warning.
    Focus: ``focus_depth`` in the depth's own units (metres for metric maps, raw model values for relative
    ones) and inside each image's depth range, or ``focus_point`` (x, y) as fractions 0..1 of width and
    height; not both. With neither, the image centre is in focus.
    max_blur_radius: disc radius in px for the largest CoC (a disparity difference of the full range).
    focus_range: width of the sharp band, in normalised disparity 0..1.
    layers: depth layers for compositing (≥ 3: one in-focus layer, the rest split between far and near).
    run: devices, chunking, progress (per image) and cancel; default: everything on the image's device.
    A depth map with no range (all one value) has nothing to focus on: it is returned unchanged with a
    zero CoC and a ``UserWarning``.
    """
    img = check_image_batch(image)
    check_depth(depth)
    if focus_depth is not None and focus_point is not None:
        raise ValueError("give either focus_depth or focus_point, not both")
    if not (math.isfinite(max_blur_radius) and max_blur_radius >= 0):
        raise ValueError(f"max_blur_radius must be ≥ 0 px, got {max_blur_radius}")
    if not (0.0 <= focus_range <= 1.0):
        raise ValueError(f"focus_range is a fraction of the depth range and must be in 0..1, got {focus_range}")
    if int(layers) != layers or layers < 3:
        raise ValueError(f"layers must be an integer ≥ 3, got {layers}")
    if focus_depth is None and focus_point is None:
        focus_point = (0.5, 0.5)

    run = run or Execution()
    device, out_device = run.devices(img)
    pair = pair_inputs(img, depth, device)
    batch, (h, w) = pair.batch, pair.size
    advice = "blur fewer or smaller images at a time"
    out = allocate_output((batch, h, w, 3), out_device, f"{batch} images of {w}x{h}", advice)
    coc_out = allocate_output((batch, h, w), out_device, f"{batch} masks of {w}x{h}", advice)
    flat_images: list[int] = []

    def work(start: int, stop: int) -> None:
        disp = pair.inverse_depth(start, stop)
        blurred, coc, flat = _blur_chunk(
            pair.rgb(start, stop),
            disp,
            focus_depth,
            focus_point,
            depth,
            max_blur_radius,
            focus_range,
            layers,
            start,
        )
        out[start:stop].copy_(blurred)
        coc_out[start:stop].copy_(coc)
        flat_images.extend((start + flat.nonzero().flatten()).tolist())

    run_chunked(batch, work, _bytes_per_image(h, w, max_blur_radius), h * w, device, run, "image")
    if flat_images:
        warnings.warn(
            f"depth of image(s) {flat_images} has no range (one value everywhere);"
            " nothing to focus on, those images are left sharp",
            UserWarning,
            stacklevel=2,
        )
    return out, coc_out
