"""3D-photo parallax ("Ken Burns"): N frames of a camera move by depth-based forward warping.

Each pixel moves by an amount proportional to its normalised inverse depth ``d`` (0 = farthest,
1 = nearest): relative maps are min-max normalised (the farthest point is treated as at infinity and
stays put), metric maps use ``d = (1/metres) / max(1/metres)``, exactly proportional to inverse depth.
Pixels are splatted forward with a z-buffer (nearer wins: ``scatter_reduce(amax)`` on packed int64 keys
of nearness, splat closeness and source index); disoccluded holes are filled from the farther of the two surfaces
found along the motion direction on either side of the hole. Every output frame depends only on its image
and its camera time, so the B·N frames are built in chunks (:mod:`dav2_core.chunks`): the output is allocated once
(after checking it fits in memory) and each chunk is computed on the compute device and copied out.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F

from ..depth import DepthMap
from ..preprocess import check_image_batch
from ..chunks import Execution, allocate_output, run_chunked
from ._common import check_depth, inverse_depth, normalise_per_image, pair_inputs

Motion = Literal["zoom_in", "dolly", "circle", "swing"]

#: Camera moves and what they do (UI order); ``strength`` is the nearest point's largest displacement
#: as a fraction of the image width.
MOTION_HELP: dict[str, str] = {
    "zoom_in": "camera moves forward: near things grow faster than far ones (frames go from the photo to the end)",
    "dolly": "dolly zoom ('vertigo'): camera moves back while zooming in, the subject at the centre keeps its"
    " size while the background looms larger",
    "circle": "camera moves on a small circle parallel to the image (a seamless loop)",
    "swing": "camera swings left and right (a seamless loop)",
}
MOTIONS: tuple[str, ...] = tuple(MOTION_HELP)

_COARSE_BITS = 4  # coarse nearness levels: above the splat tier in the z-buffer key
_NEAR_BITS = 12  # nearness levels in the z-buffer key
_CLOSE_BITS = 8  # how close a splat lands to the target pixel
_IDX_BITS = 32  # source pixel index


def inverse_depth01(depth: DepthMap, values: torch.Tensor | None = None) -> torch.Tensor:
    """[B,H,W] normalised inverse depth 0..1 (see the module docstring); ``values`` overrides the
    map's (already paired/resized) inverse depth."""
    disp = inverse_depth(depth) if values is None else values
    if depth.is_metric:
        top = disp.flatten(1).amax(1).clamp_min(1e-12)
        return (disp / top[:, None, None]).clamp(0.0, 1.0)
    n, _ = normalise_per_image(disp)
    return n


def _displacements(
    motion: str, times: list[float], d: torch.Tensor, strength: float, subject: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel (dx, dy) in px for each item's camera time ``times[i]`` (0..1) and inverse depth ``d`` [b,H,W]."""
    b, h, w = d.shape
    shift = strength * w

    def per_item(values: list[float]) -> torch.Tensor:  # factors computed in float64, then as float32 [b,1,1]
        return torch.tensor(values, device=d.device, dtype=torch.float32).view(b, 1, 1)

    if motion == "swing":
        return d * shift * per_item([math.sin(2 * math.pi * t) for t in times]), torch.zeros_like(d)
    if motion == "circle":
        a = [2 * math.pi * t for t in times]
        return d * shift * per_item([math.cos(x) for x in a]), d * shift * per_item([math.sin(x) for x in a])
    ys = torch.arange(h, device=d.device, dtype=torch.float32)[:, None] - (h - 1) / 2
    xs = torch.arange(w, device=d.device, dtype=torch.float32)[None, :] - (w - 1) / 2
    amount = per_item(
        [2.0 * strength * t for t in times]
    )  # the nearest point at the side edge moves strength × width at t = 1
    if motion == "zoom_in":
        grow = amount * d
    else:  # dolly out + zoom in: magnification (1 + a d_subject) / (1 + a d), the subject keeps its size
        grow = (1.0 + amount * subject[:, None, None]) / (1.0 + amount * d) - 1.0
    return xs * grow, ys * grow


def _splat(
    colour: torch.Tensor, d: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Forward-warp [B,3,H,W] by (dx, dy) with a z-buffer → (colour, nearness, valid mask).

    Each source pixel is splatted to the target nearest to where it lands (first tier) and to the three
    other pixels around it (second tier: fills the cracks a magnified surface opens). Priority, highest
    first: coarse nearness (16 levels, so a far surface never shows through a near surface's cracks), tier
    (within one surface the nearest landing wins: no smearing), fine nearness, then landing closeness.
    """
    b, _, h, w = colour.shape
    hw = h * w
    dev = colour.device
    ys = torch.arange(h, device=dev, dtype=torch.float32)[:, None].expand(h, w)
    xs = torch.arange(w, device=dev, dtype=torch.float32)[None, :].expand(h, w)
    tx, ty = xs + dx, ys + dy
    x0, y0 = torch.floor(tx), torch.floor(ty)
    fx, fy = tx - x0, ty - y0
    src = torch.arange(hw, device=dev, dtype=torch.int64).expand(b, hw)
    qnear = (d.flatten(1) * (2**_NEAR_BITS - 1)).round().long()
    qcoarse = (d.flatten(1) * (2**_COARSE_BITS - 1)).round().long()
    keys = torch.full((b, hw), -1, device=dev, dtype=torch.int64)
    nearest_x = (fx >= 0.5).float()
    nearest_y = (fy >= 0.5).float()
    for cx in (0.0, 1.0):
        for cy in (0.0, 1.0):
            px, py = x0 + cx, y0 + cy
            weight = (1 - (fx - cx).abs()) * (1 - (fy - cy).abs())
            first = (nearest_x == cx) & (nearest_y == cy)
            inside = (px >= 0) & (px <= w - 1) & (py >= 0) & (py <= h - 1) & (weight > 0)
            target = (py.clamp(0, h - 1) * w + px.clamp(0, w - 1)).long().flatten(1)
            key = (
                (qcoarse << (1 + _NEAR_BITS + _CLOSE_BITS + _IDX_BITS))
                | (first.long().flatten(1) << (_NEAR_BITS + _CLOSE_BITS + _IDX_BITS))
                | (qnear << (_CLOSE_BITS + _IDX_BITS))
                | ((weight * (2**_CLOSE_BITS - 1)).round().long().flatten(1) << _IDX_BITS)
                | src
            )
            key = torch.where(inside.flatten(1), key, torch.full_like(key, -1))
            keys = keys.scatter_reduce(1, target, key, reduce="amax")
    valid = keys >= 0
    winner = torch.where(valid, keys & (2**_IDX_BITS - 1), torch.zeros_like(keys))
    out = torch.gather(colour.flatten(2), 2, winner[:, None].expand(b, 3, hw)).view(b, 3, h, w)
    near = torch.gather(d.flatten(1), 1, winner).view(b, h, w)
    return out, near, valid.view(b, h, w)


def _push_pull(colour: torch.Tensor, near: torch.Tensor, valid: torch.Tensor, softness: float = 0.05) -> torch.Tensor:
    """Fill invalid pixels of [B,3,H,W] with a pyramid average of valid ones, farther ones weighted
    ``exp(-nearness / softness)`` more; valid pixels are kept exactly. O(log max(H, W)) steps."""
    w = torch.where(valid, torch.exp(-(near - 1.0) / softness), torch.zeros_like(near))[:, None]
    levels = [(colour * w, w)]
    while min(levels[-1][1].shape[-2:]) > 1 and bool((levels[-1][1] <= 0).any()):
        cw, ww = levels[-1]
        levels.append((F.avg_pool2d(cw, 2, ceil_mode=True), F.avg_pool2d(ww, 2, ceil_mode=True)))
    cw, ww = levels[-1]
    filled = cw / ww.clamp_min(1e-30)
    for cw, ww in reversed(levels[:-1]):
        up = F.interpolate(filled, size=cw.shape[-2:], mode="bilinear", align_corners=False)
        filled = torch.where(ww > 0, cw / ww.clamp_min(1e-30), up)
    return torch.where(valid[:, None], colour, filled)


def fill_holes(
    colour: torch.Tensor,
    near: torch.Tensor,
    valid: torch.Tensor,
    direction: torch.Tensor,
    reach: int | torch.Tensor,
) -> torch.Tensor:
    """Fill disocclusions in [B,3,H,W]: each hole pixel takes the farther of the first valid pixels found
    along ``direction`` and against it ([B,2,H,W] unit (dx, dy) of the parallax motion), up to ``reach`` px
    (one number, or [B] integers: one per image).

    A disocclusion opens along the motion between a nearer and a farther surface, so the farther of the two
    is the background it uncovered; the foreground is never smeared into it. Holes with nothing within
    reach (rare: image borders) fall back to a background-weighted push-pull. Valid pixels are untouched.
    """
    if bool(valid.all()):
        return colour
    b, _, h, w = colour.shape
    data = torch.cat([colour, near[:, None]], 1).permute(0, 2, 3, 1).reshape(b * h * w, 4)
    ok = valid.flatten()
    hb, hy, hx = torch.nonzero(~valid, as_tuple=True)  # only the hole pixels are searched from
    dirs = direction.expand(b, 2, h, w)[hb, :, hy, hx]  # [n,2]
    reaches = torch.as_tensor(reach, device=colour.device).expand(b)
    limit = reaches[hb]  # [n]: each hole pixel searches as far as its own image's reach
    best = torch.full((hb.shape[0], 4), float("inf"), device=colour.device)
    for sign in (1.0, -1.0):
        found = torch.zeros_like(hb, dtype=torch.bool)
        side = torch.zeros_like(best)
        for k in range(1, int(reaches.max()) + 1):
            px = torch.round(hx + sign * k * dirs[:, 0])
            py = torch.round(hy + sign * k * dirs[:, 1])
            inside = (px >= 0) & (px <= w - 1) & (py >= 0) & (py <= h - 1) & (limit >= k)
            idx = (hb * h + py.clamp(0, h - 1).long()) * w + px.clamp(0, w - 1).long()
            hit = inside & ok[idx] & ~found
            side = torch.where(hit[:, None], data[idx], side)
            found = found | hit
            if k % 8 == 0 and bool(found.all()):
                break
        farther = found & (side[:, 3] < best[:, 3])
        best = torch.where(farther[:, None], side, best)
    got = torch.isfinite(best[:, 3])
    colour, near, valid = colour.clone(), near.clone(), valid.clone()
    gb, gy, gx = hb[got], hy[got], hx[got]
    colour[gb, :, gy, gx] = best[got, :3]
    near[gb, gy, gx] = best[got, 3]
    valid[gb, gy, gx] = True
    if bool(valid.all()):
        return colour
    return _push_pull(colour, near, valid)


def _directions(motion: str, times: list[float], d: torch.Tensor) -> torch.Tensor:
    """[b,2,1,1] or [1,2,H,W] unit directions along which pixels move for each item (for hole filling)."""
    _, h, w = d.shape
    dev = d.device
    if motion in ("swing", "circle"):
        vs = []
        for t in times:
            a = 2 * math.pi * t
            vs.append((1.0 if math.sin(a) >= 0 else -1.0, 0.0) if motion == "swing" else (math.cos(a), math.sin(a)))
        return torch.tensor(vs, device=dev, dtype=torch.float32).view(len(times), 2, 1, 1)
    ys = torch.arange(h, device=dev, dtype=torch.float32)[:, None].expand(h, w) - (h - 1) / 2
    xs = torch.arange(w, device=dev, dtype=torch.float32)[None, :].expand(h, w) - (w - 1) / 2
    v = torch.stack([xs, ys])[None]
    return v / v.norm(dim=1, keepdim=True).clamp_min(1e-6)


def _times(motion: str, frames: int) -> list[float]:
    if motion in ("circle", "swing"):
        return [k / frames for k in range(frames)]  # loops: the last frame leads back into the first
    return [k / (frames - 1) for k in range(frames)] if frames > 1 else [1.0]


#: Peak working memory per frame in a chunk, in bytes per pixel: the z-buffer keys and indices (int64), the
#: warped coordinates and weights (float32), the hole search, the frame itself (~180 measured on a CPU at
#: 1024², with margin for large disocclusions).
BYTES_PER_FRAME_PIXEL = 256


def _frames_chunk(
    img: torch.Tensor, disp: torch.Tensor, depth: DepthMap, times: list[float], motion: str, strength: float
) -> torch.Tensor:
    """Frames for a chunk: img [b,H,W,3] and inverse depth [b,H,W] (one row per frame, on one device),
    camera time ``times[i]`` for frame i -> [b,H,W,3]."""
    d = inverse_depth01(depth, disp)
    _, h, w = d.shape
    cy, cx, r = h // 2, w // 2, max(1, min(h, w) // 20)
    subject = d[:, cy - r : cy + r + 1, cx - r : cx + r + 1].flatten(1).median(1).values
    dx, dy = _displacements(motion, times, d, strength, subject)
    warped, near, valid = _splat(img.permute(0, 3, 1, 2).contiguous(), d, dx, dy)
    reach = torch.sqrt(dx**2 + dy**2).flatten(1).amax(1).ceil().long() + 2
    return fill_holes(warped, near, valid, _directions(motion, times, d), reach).permute(0, 2, 3, 1)


def parallax_frames(
    image: torch.Tensor,
    depth: DepthMap,
    frames: int,
    motion: Motion = "circle",
    strength: float = 0.03,
    run: Execution | None = None,
) -> torch.Tensor:
    """N frames of a camera move over each image → IMAGE [B·N,H,W,3] float 0..1 (image 0's frames first).

    image: IMAGE [B,H,W,C] (uint8 or float 0..1, the ``preprocess`` rule); depth: DepthMap with the same
    batch or a batch of 1 (either side of length 1 is reused; a depth of another size is resized with a
    warning). frames: N ≥ 1. motion: one of ``MOTIONS``. strength: the nearest point's largest
    displacement as a fraction of the image width (≥ 0; 0.02-0.05 looks natural). zoom_in/dolly run from
    the photo (t=0) to the full move (t=1); a single frame is the full move.
    run: devices, chunking, progress (per frame) and cancel; default: everything on the image's device.
    The output (B·N·H·W·3 float32) must fit in the memory free on the output device, or a ValueError says
    how large it would be. Frames are built in chunks, so compute memory is bounded by one chunk.
    """
    img = check_image_batch(image)
    check_depth(depth)
    if int(frames) != frames or frames < 1:
        raise ValueError(f"frames must be a whole number ≥ 1, got {frames}")
    if motion not in MOTIONS:
        raise ValueError(f"unknown motion {motion!r}; choose one of {', '.join(MOTIONS)}")
    if not (math.isfinite(strength) and strength >= 0):
        raise ValueError(f"strength must be ≥ 0 (a fraction of the image width), got {strength}")
    run = run or Execution()
    device, out_device = run.devices(img)
    n = int(frames)
    pair = pair_inputs(img, depth, device)
    batch, (h, w) = pair.batch, pair.size
    images = f"{batch} images x " if batch > 1 else ""
    out = allocate_output(
        (batch * n, h, w, 3),
        out_device,
        f"{images}{n} frames of {w}x{h} (float32 RGB)",
        "use fewer frames or a smaller image (e.g. scale it down before this node)",
    )
    times = _times(motion, n)

    def work(start: int, stop: int) -> None:
        parts = []
        for i in range(start // n, (stop - 1) // n + 1):  # the images this chunk's frames belong to
            first, last = max(start, i * n), min(stop, (i + 1) * n)
            count = last - first
            disp = pair.inverse_depth(i, i + 1).expand(count, -1, -1)
            rgb = pair.rgb(i, i + 1).expand(count, -1, -1, -1)
            parts.append((rgb, disp, times[first - i * n : last - i * n]))
        rgb = torch.cat([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
        disp = torch.cat([p[1] for p in parts]) if len(parts) > 1 else parts[0][1]
        chunk_times = [t for p in parts for t in p[2]]
        out[start:stop].copy_(_frames_chunk(rgb, disp, depth, chunk_times, motion, strength))

    run_chunked(batch * n, work, BYTES_PER_FRAME_PIXEL * h * w, h * w, device, run, "frame")
    return out
