"""Video Depth Anything over clips of any length, streamed: the official algorithms with bounded memory.

Offline (:class:`OfflineVDA`) = the official ``VideoDepthAnything.infer_video_depth(..., fp32=True)``:
32-frame windows every 22 frames; the first 10 slots of each window are the previous window's key frames
(slots 0, 12, 24..31: slot 0 is always the clip's first frame); each window's depth is scaled and shifted
(least squares on its first two slots against the previous window's, relative models only) and blended
linearly over the 8 overlapping frames; the last window is padded with copies of the last frame. The
official code holds every frame and every depth map of the clip; this holds one window of network inputs,
the 10 key frames' encoder features (reused instead of re-encoded: 10 of every 32 frames), one window of
depth and 8 pending output frames, whatever the clip's length. Output lags input by up to 32 frames.

Online (:class:`OnlineVDA`) = the official ``infer_video_depth_one``: one frame in, one depth out, its
temporal attention running against cached attention inputs of earlier frames (the first two frames and the
latest 29). Less accurate than offline (the official README: ScanNet delta1 0.926 -> 0.836); for live or
endless input.

Both take frames [n,H,W,C] (uint8 or float 0..1, any n per call) and return depth [m,H,W] float32 at the
frame size (relative inverse depth, or metres for metric VDA). Network size: the official rule, i.e. the
short side at ``input_size`` (x14), with ``input_size`` reduced for aspect ratios above 1.78
(:func:`vda_input_size`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
import torch.nn.functional as F

from .engines import as_engine, describe, is_video_model
from .inference import auto_chunk_size
from .preprocess import check_image_batch, network_size, prepare_batch, to_rgb_float
from .variants import DEFAULT_INPUT_SIZE, FAMILY_NAMES, PATCH_SIZE, VDA_WINDOW

#: Official inference settings ("do not change"): window, overlap, key-frame slots, blended frames.
OVERLAP = 10
KEYFRAMES = (0, 12, 24, 25, 26, 27, 28, 29, 30, 31)
INTERP_LEN = 8
STEP = VDA_WINDOW - OVERLAP  # 22 new frames per window after the first
ALIGN_LEN = OVERLAP - INTERP_LEN  # slots 0 and 1 drive the scale/shift alignment
#: Online mode: cached frames kept at most (official ``gap`` + 1).
ONLINE_CACHE = (VDA_WINDOW - OVERLAP) * 2 - 1 - ALIGN_LEN + 1
#: Aspect ratio above which the official code lowers the input size (its 16:9 memory recommendation).
MAX_RATIO = 1.78

CancelCheck = Callable[[], None]


def check_vda_model(model: Any) -> Any:
    """The model, if it is Video Depth Anything (ValueError naming what to load instead)."""
    if not is_video_model(model):
        raise ValueError(
            f"{getattr(model, 'source', '') or 'this model'} is a {FAMILY_NAMES['dav2']} model (per image); the "
            "Video Depth Anything modes need a Video Depth Anything checkpoint, e.g. video_depth_anything_vits.pth "
            "(variant vda_vits). Load one, or use the per-frame path with temporal consistency."
        )
    return model


def check_vda_options(options: Any, refine_ok: bool = False) -> None:
    """ValueError for estimate options Video Depth Anything cannot honour (``options``: an EstimateOptions).

    It runs the official keep_aspect rule on whole windows: no tiles, no native resolution, no TTA (flip or multi-scale);
    ``refine`` only where the caller refines the finished frames (``refine_ok``). Temporal consistency is
    VDA's own (its windows are aligned): the per-frame aligner is not used."""
    problems = []
    if options.resolution != "keep_aspect":
        problems.append(f"resolution {options.resolution!r} (use keep_aspect: VDA runs at the official input size)")
    if options.tta != "none":
        problems.append(f"tta {options.tta!r} (set it to none: VDA's windows are its own ensemble)")
    if options.refine > 0 and not refine_ok:
        problems.append("refine (set it to 0)")
    if problems:
        raise ValueError(
            "Video Depth Anything cannot use " + "; ".join(problems) + ". For tiles or per-image options load a "
            "Depth Anything V2 model instead."
        )


def vda_input_size(height: int, width: int, input_size: int = DEFAULT_INPUT_SIZE) -> int:
    """The official input-size rule: ``input_size`` for aspect ratios up to 1.78, else
    ``round(int(input_size * 1.777 / ratio) / 14) * 14`` (ValueError when that leaves less than one patch)."""
    ratio = max(height, width) / min(height, width)
    if ratio <= MAX_RATIO:
        return input_size
    reduced = round(int(input_size * 1.777 / ratio) / PATCH_SIZE) * PATCH_SIZE
    if reduced < PATCH_SIZE:
        raise ValueError(
            f"a {width}x{height} video is too elongated (aspect ratio {ratio:.1f}) for input_size {input_size}: "
            f"Video Depth Anything lowers the input size for ratios above {MAX_RATIO} and would reach {reduced} px. "
            "Crop the video or raise input_size."
        )
    return reduced


def vda_net_size(height: int, width: int, input_size: int = DEFAULT_INPUT_SIZE) -> tuple[int, int]:
    """(h, w) the network runs at for ``height`` x ``width`` frames (official rule, multiples of 14)."""
    return network_size(height, width, vda_input_size(height, width, input_size))


class _VDABase:
    """Shared preparation: frame checks, network inputs, full-resolution depth."""

    def __init__(
        self,
        model: Any,
        input_size: int = DEFAULT_INPUT_SIZE,
        output_device: torch.device | str | None = "cpu",
        check_cancel: CancelCheck | None = None,
    ) -> None:
        self.model = check_vda_model(model)
        engine = as_engine(model)
        self.device, self.dtype = engine.device, engine.input_dtype
        self.input_size = input_size
        self.kind = describe(model)[0]
        self.output_device = torch.device(output_device) if output_device is not None else self.device
        self.check_cancel = check_cancel
        self.size: tuple[int, int] | None = None  # frame (H, W), fixed by the first frame
        self.net: tuple[int, int] | None = None
        self.frames_in = 0
        self.frames_out = 0

    def _inputs(self, frames: torch.Tensor) -> torch.Tensor:
        """frames [n,H,W,C] -> network inputs [n,3,h,w] on the model's device."""
        frames = check_image_batch(frames, "frame")
        height, width = frames.shape[1:3]
        if self.size is None:
            self.size = (height, width)
            self.net = vda_net_size(height, width, self.input_size)
            as_engine(self.model).check_net_size(self.net)
        elif (height, width) != self.size:
            raise ValueError(
                f"frame {self.frames_in} is {width}x{height}, the clip started at {self.size[1]}x{self.size[0]}: "
                "every frame of a clip must have the same size"
            )
        rgb = to_rgb_float(frames.to(self.device), self.frames_in)
        return prepare_batch(rgb, self.net, self.dtype).contiguous()

    def _full_size(self, depth: torch.Tensor) -> torch.Tensor:
        """Network-size depth [n,h,w] -> frame-size depth [n,H,W] float32 (bilinear, align_corners, official)."""
        return F.interpolate(depth[:, None].float(), self.size, mode="bilinear", align_corners=True)[:, 0]

    def _emit(self, depth: torch.Tensor) -> torch.Tensor:
        self.frames_out += depth.shape[0]
        return depth.to(self.output_device)

    def _empty(self) -> torch.Tensor:
        height, width = self.size if self.size is not None else (0, 0)
        return torch.empty((0, height, width), dtype=torch.float32, device=self.output_device)


def _scale_shift(pred: torch.Tensor, target: torch.Tensor) -> tuple[float, float]:
    """Least-squares (scale, shift) with ``scale * pred + shift ~ target`` (official
    ``compute_scale_and_shift``; (1, 0) when singular), summed in float64."""
    device = pred.device if pred.device.type != "mps" else torch.device("cpu")  # no float64 on MPS
    p, t = pred.to(device, torch.float64).flatten(), target.to(device, torch.float64).flatten()
    a00, a01, a11 = float((p * p).sum()), float(p.sum()), float(p.numel())
    b0, b1 = float((p * t).sum()), float(t.sum())
    det = a00 * a11 - a01 * a01
    if det == 0:
        return 1.0, 0.0
    return (a11 * b0 - a01 * b1) / det, (-a01 * b0 + a00 * b1) / det


class OfflineVDA(_VDABase):
    """The official offline windowed inference, streamed (module docstring). Feed frames with :meth:`push`
    (any number per call), then call :meth:`finish` once; each returns the depth frames that became final,
    in order: every input frame comes out exactly once. ``metric`` (default: from the model) turns the
    scale/shift alignment off, as officially for metric models."""

    def __init__(
        self,
        model: Any,
        input_size: int = DEFAULT_INPUT_SIZE,
        output_device: torch.device | str | None = "cpu",
        check_cancel: CancelCheck | None = None,
        metric: bool | None = None,
        encoder_chunk: int | None = None,
    ) -> None:
        super().__init__(model, input_size, output_device, check_cancel)
        self.metric = self.kind == "metric" if metric is None else metric
        self.encoder_chunk = encoder_chunk
        self.windows = 0
        self._new: list[torch.Tensor] = []  # network inputs [3,h,w] not yet in a window
        self._last_input: torch.Tensor | None = None
        self._key_tokens: list[torch.Tensor] | None = None  # their encoder token maps
        self._ref: list[torch.Tensor] = []  # aligned full-size depth of slot 0 (window 0) and the last slot 12
        self._tail: torch.Tensor | None = None  # the last 8 aligned frames, pending the next window's blend
        self._finished = False

    def push(self, frames: torch.Tensor) -> torch.Tensor:
        """Add frames [n,H,W,C]; returns the depth frames [m,H,W] that are final now (m may be 0)."""
        if self._finished:
            raise RuntimeError("this OfflineVDA has finished; start a new one for another clip")
        if isinstance(frames, torch.Tensor) and frames.ndim == 4 and frames.shape[0] == 0:
            return self._empty()
        inputs = self._inputs(frames)
        self.frames_in += inputs.shape[0]
        self._new.extend(inputs.unbind(0))
        self._last_input = inputs[-1]
        out = []
        while len(self._new) >= self._needed():
            out.append(self._window())
        return torch.cat(out) if out else self._empty()

    def finish(self) -> torch.Tensor:
        """End of the clip: runs the padded last window(s); returns the remaining depth frames."""
        if self._finished:
            return self._empty()
        self._finished = True
        if self.frames_in == 0:
            raise ValueError("the clip has no frames: Video Depth Anything needs at least one frame")
        out = []
        while STEP * self.windows < self.frames_in:  # the official windows start at 0, 22, 44, ... < clip length
            self._new.extend([self._last_input] * (self._needed() - len(self._new)))
            out.append(self._window())
        out.append(self._limit(self._tail))
        self._tail = None
        return torch.cat(out)

    # ------------------------------------------------------------------ internals
    def _needed(self) -> int:
        return VDA_WINDOW if self.windows == 0 else VDA_WINDOW - OVERLAP

    def _limit(self, depth: torch.Tensor) -> torch.Tensor:
        """Emit at most up to the clip length (padding frames never come out)."""
        room = self.frames_in - self.frames_out if self._finished else depth.shape[0]
        return self._emit(depth[: max(0, room)])

    def _encode(self, inputs: torch.Tensor) -> list[torch.Tensor]:
        chunk = self.encoder_chunk or auto_chunk_size(self.model, self.net, self.size)
        parts = [self.model.encode(inputs[i : i + chunk]) for i in range(0, inputs.shape[0], chunk)]
        return [torch.cat(level) for level in zip(*parts)]

    @torch.inference_mode()
    def _window(self) -> torch.Tensor:
        """Run the next window on the queued inputs; returns the frames it finalises."""
        take = self._needed()
        new, self._new = torch.stack(self._new[:take]), self._new[take:]
        tokens = self._encode(new)
        if self._key_tokens is not None:  # slots 0..9: the previous window's key frames
            tokens = [torch.cat((key, level)) for key, level in zip(self._key_tokens, tokens)]
        keys = list(KEYFRAMES)
        self._key_tokens = [level[keys] for level in tokens]
        grid = (self.net[0] // PATCH_SIZE, self.net[1] // PATCH_SIZE)
        depth, _ = self.model.decode(tokens, grid, VDA_WINDOW)
        del tokens
        depth = self._full_size(depth)
        first = self.windows == 0
        self.windows += 1
        if self.check_cancel is not None:
            self.check_cancel()
        if first:
            self._ref = [depth[0], depth[KEYFRAMES[1]]]
            self._tail = depth[VDA_WINDOW - INTERP_LEN :]
            return self._limit(depth[: VDA_WINDOW - INTERP_LEN])
        scale, shift = (1.0, 0.0) if self.metric else _scale_shift(depth[:ALIGN_LEN], torch.stack(self._ref))
        depth = depth.mul_(scale).add_(shift).clamp_(min=0.0)
        blended = _blend(self._tail, depth[ALIGN_LEN:OVERLAP])
        self._ref = [self._ref[0], depth[KEYFRAMES[1]]]
        self._tail = depth[VDA_WINDOW - INTERP_LEN :]
        return torch.cat((self._limit(blended), self._limit(depth[OVERLAP : VDA_WINDOW - INTERP_LEN])))


def _blend(pre: torch.Tensor, post: torch.Tensor) -> torch.Tensor:
    """Official ``get_interpolate_frames``: pre * (1 - w) + post * w with w = 0, 1/7, ..., 1 over the frames."""
    count = pre.shape[0]
    step = 1.0 / (count - 1)
    weights = [0.0] + [i * step for i in range(1, count - 1)] + [1.0]
    return torch.stack([pre[i] * (1 - w) + post[i] * w for i, w in enumerate(weights)])


class OnlineVDA(_VDABase):
    """The official streaming mode (``infer_video_depth_one``): :meth:`push` frames, get their depth at once."""

    _cache: list[list[torch.Tensor]]  # per frame: its 8 attention inputs (the first frame fills it)

    def push(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames [n,H,W,C] -> their depth [n,H,W], one frame at a time against the cache."""
        inputs = self._inputs(frames)
        return torch.cat([self._one(x[None]) for x in inputs]) if inputs.shape[0] else self._empty()

    def finish(self) -> torch.Tensor:
        """Nothing is pending in online mode: an empty batch (same interface as :class:`OfflineVDA`)."""
        return self._empty()

    @torch.inference_mode()
    def _one(self, x: torch.Tensor) -> torch.Tensor:
        grid = (self.net[0] // PATCH_SIZE, self.net[1] // PATCH_SIZE)
        tokens = self.model.encode(x)
        if self.frames_in == 0:
            depth, states = self.model.decode(tokens, grid, 1)
            self._cache = [states] * VDA_WINDOW
        else:
            window = self._cache[:2] + self._cache[-(VDA_WINDOW - 3) :]
            cache = [torch.cat([frame[i] for frame in window], dim=1) for i in range(len(window[0]))]
            depth, states = self.model.decode(tokens, grid, 1, cache)
            self._cache.append(states)
        if self.frames_in + VDA_WINDOW > ONLINE_CACHE:  # official sliding window: drop the oldest but frame 0
            del self._cache[1]
        self.frames_in += 1
        if self.check_cancel is not None:
            self.check_cancel()
        return self._emit(self._full_size(depth))


def vda_depth(
    model: Any,
    chunks: Iterable[torch.Tensor],
    *,
    streaming: bool = False,
    input_size: int = DEFAULT_INPUT_SIZE,
    output_device: torch.device | str | None = "cpu",
    check_cancel: CancelCheck | None = None,
) -> Iterator[torch.Tensor]:
    """Depth of a clip given as chunks of frames [n,H,W,C], as a generator of depth chunks [m,H,W] in frame
    order (offline windows by default; ``streaming``: the online mode). Empty chunks are not yielded."""
    runner: OfflineVDA | OnlineVDA = (OnlineVDA if streaming else OfflineVDA)(
        model, input_size, output_device, check_cancel
    )
    for frames in chunks:
        depth = runner.push(frames)
        if depth.shape[0]:
            yield depth
    depth = runner.finish()
    if depth.shape[0]:
        yield depth
