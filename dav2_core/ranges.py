"""The one vocabulary of range modes: which depth values map to 0..1 (near = 1), for every front end.

A range is a **statistic** taken over a **scope**:

* statistics (:data:`STATISTIC_HELP`): ``min_max``, ``percentile``, ``manual`` (bounds given), ``raw`` (no range);
* scopes (:data:`SCOPE_HELP`): ``image`` (each image or frame alone), ``batch``, ``clip`` (two passes),
  ``running`` (one pass, only widens), ``fixed`` (known in advance).

Each front end offers the pairs that make sense to it, named from this vocabulary: a statistic where its scope
is fixed (Estimate Depth ``min_max`` / ``percentile`` / ``batch`` / ``raw``, Colorize Depth ``min_max`` /
``percentile`` / ``manual``, the CLI's ``--normalize``), a scope where another input gives the statistic (Video
Depth ``clip`` / ``running`` / ``image``, the CLI's ``--video-range``, ``DepthStream.range_mode``). The tables
are defined here, once, as :class:`RangeName` entries with one help text each, and every front end takes its
option list, its help and its meaning from them (:data:`FRONT_ENDS`).

Earlier versions named some choices differently (``per_image``, ``two_pass``, ``per_frame``, ``auto``):
:data:`LEGACY_NAMES` maps them to the current names, per front end, and :func:`canonical` accepts both, so a
saved workflow, API prompt, script or command line keeps working with the same result. :func:`statistic_mode`
is the one mapping from a statistic to the estimate normalisation that takes it per image; :func:`split` gives
any front-end name's (statistic, scope).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Statistic = Literal["min_max", "percentile", "manual", "raw"]
Scope = Literal["image", "batch", "clip", "running", "fixed"]

#: What a range is measured with (the canonical statistics).
STATISTIC_HELP: dict[str, str] = {
    "min_max": "the finite minimum..maximum",
    "percentile": "the low..high percentiles, so a few extreme pixels do not squash the contrast",
    "manual": "fixed bounds given in the depth's own units (metres for metric models)",
    "raw": "no range: the model's values unchanged",
}
#: Over which frames a range is taken (the canonical scopes).
SCOPE_HELP: dict[str, str] = {
    "image": "each image (or video frame) on its own: most contrast, but video flickers",
    "batch": "one range over the whole batch: frames keep their relative brightness",
    "clip": "one range over the whole clip, measured by a first pass",
    "running": "one pass: a range that only widens as new depth is seen",
    "fixed": "a range known in advance (e.g. from a first pass)",
}
#: Percentiles (low, high) of the 'percentile' statistic: depth images and video, and Colorize Depth.
PERCENTILES: tuple[float, float] = (1.0, 99.0)
COLORIZE_PERCENTILES: tuple[float, float] = (2.0, 98.0)


@dataclass(frozen=True)
class RangeName:
    """A front end's name for a range choice: the statistic and scope it stands for (None: set by another
    input, e.g. Video Depth's ``range_statistic``) and the help text shown for it."""

    help: str
    statistic: Statistic | None = None
    scope: Scope | None = None


#: Estimate Depth's ``normalization`` (``EstimateOptions.normalization``): a statistic per image or batch.
ESTIMATE_MODES: dict[str, RangeName] = {
    "min_max": RangeName("min-max per image: each image uses the full 0..1 range (near = white)", "min_max", "image"),
    "percentile": RangeName(
        "v2-style: clip each image at its low/high percentiles (default 1-99) then scale to 0..1;"
        " robust to a few extreme pixels",
        "percentile",
        "image",
    ),
    "batch": RangeName(
        "one min-max over the whole batch: frames keep their relative brightness, so video does not flicker",
        "min_max",
        "batch",
    ),
    "raw": RangeName(
        "the model's values unchanged (relative inverse depth, or metres for metric models); for depth math,"
        " not for images",
        "raw",
        "image",
    ),
}
#: Video Depth's ``normalization`` and the CLI's ``--video-range``: the scope over a clip (the first is the
#: default); the statistic is Video Depth's ``range_statistic`` / the CLI's ``--normalize``.
VIDEO_SCOPES: dict[str, RangeName] = {
    "clip": RangeName(
        "one range for the whole clip from a first pass (no flicker, no drift: every frame uses the final "
        "range). The first pass caches the depth on disk (float16) or, if the disk is short, the clip is "
        "estimated twice",
        scope="clip",
    ),
    "running": RangeName(
        "one pass: the range only widens as new depth appears (no flicker once settled; the grey levels of "
        "the first frames can shift while it widens)",
        scope="running",
    ),
    "image": RangeName(
        "each frame stretched to its own range (most contrast per frame, but it flickers)", scope="image"
    ),
}
#: ``DepthStream.range_mode``: how streamed chunks are normalised (a clip-range run is 'running' then 'fixed').
STREAM_SCOPES: dict[str, RangeName] = {
    "running": RangeName(
        "one range for the clip that only widens as new depth is seen (no flicker, one pass)", scope="running"
    ),
    "image": RangeName("each frame stretched to its own range (maximum contrast per frame, flickers)", scope="image"),
    "fixed": RangeName(
        "a range known in advance, e.g. from a first pass over the whole clip (no flicker)", scope="fixed"
    ),
}
#: Video Depth's ``range_statistic``: what one frame's range is.
VIDEO_STATISTICS: dict[str, RangeName] = {
    "min_max": RangeName("each frame's min..max", "min_max"),
    "percentile": RangeName(
        "each frame's 1st..99th percentile (a few extreme pixels do not squash the contrast)", "percentile"
    ),
}
#: The CLI's ``--normalize`` (images, videos and live): the per-image statistics of :data:`ESTIMATE_MODES`.
CLI_STATISTICS: dict[str, RangeName] = {name: ESTIMATE_MODES[name] for name in ("min_max", "percentile")}
CLI_STATISTICS_HELP = (
    "min_max: each image's min..max; percentile: clip at the 1st/99th percentiles. Images use their own range; "
    "videos combine the frames' ranges as --video-range says (older name per_image is accepted)"
)
#: Colorize Depth's ``range_mode``: which depth values span the colormap (each image, or manual bounds).
COLORIZE_MODES: dict[str, RangeName] = {
    "min_max": RangeName("min-max of each image (near = high end of the colormap)", "min_max", "image"),
    "percentile": RangeName(
        "each image clipped at its 2nd-98th percentiles, robust to outliers", "percentile", "image"
    ),
    "manual": RangeName(
        "fixed min/max in the depth's own units (metres for metric models, raw values for relative)", "manual", "image"
    ),
}

#: Every front end's table, by the key :func:`canonical` and :data:`LEGACY_NAMES` use.
FRONT_ENDS: dict[str, dict[str, RangeName]] = {
    "estimate": ESTIMATE_MODES,
    "video": VIDEO_SCOPES,
    "video_statistic": VIDEO_STATISTICS,
    "stream": STREAM_SCOPES,
    "cli_statistic": CLI_STATISTICS,
    "colorize": COLORIZE_MODES,
}
#: The names earlier versions used, per front end (old -> new, the same choice): saved workflows, API prompts,
#: scripts and command lines holding them keep working and give the same result. Never remove an entry.
LEGACY_NAMES: dict[str, dict[str, str]] = {
    "estimate": {"per_image": "min_max"},
    "video": {"two_pass": "clip", "per_frame": "image"},
    "video_statistic": {},
    "stream": {"per_frame": "image"},
    "cli_statistic": {"per_image": "min_max"},
    "colorize": {"auto": "min_max"},
}


def choices_text(front_end: str) -> str:
    """'a, b, c' of a front end's names, plus the older names it still accepts (for error messages and help)."""
    text = ", ".join(FRONT_ENDS[front_end])
    old = LEGACY_NAMES[front_end]
    if old:
        text += " (older names accepted: " + ", ".join(f"{a} = {b}" for a, b in old.items()) + ")"
    return text


def canonical(name: object, front_end: str, what: str = "range mode") -> str:
    """The current name of ``name`` in ``front_end``'s table (:data:`FRONT_ENDS`): itself if current, its
    :data:`LEGACY_NAMES` entry if an older name; ValueError naming ``what`` and the choices otherwise."""
    names = FRONT_ENDS[front_end]
    if isinstance(name, str):
        if name in names:
            return name
        if name in LEGACY_NAMES[front_end]:
            return LEGACY_NAMES[front_end][name]
    raise ValueError(f"unknown {what} {name!r}; choose one of {choices_text(front_end)}")


def help_of(names: dict[str, RangeName]) -> dict[str, str]:
    """``{name: help}`` of a front end's table (for tooltips and --help)."""
    return {name: entry.help for name, entry in names.items()}


def split(name: str, front_end: str) -> tuple[Statistic | None, Scope | None]:
    """The (statistic, scope) a front end's ``name`` (current or older) stands for; ValueError names the choices."""
    entry = FRONT_ENDS[front_end][canonical(name, front_end)]
    return entry.statistic, entry.scope


def statistic_mode(statistic: str) -> str:
    """The ``EstimateOptions.normalization`` that takes ``statistic`` per image ('min_max', 'percentile',
    'raw': the same name); ValueError for one no image mode takes ('manual')."""
    for name, entry in ESTIMATE_MODES.items():
        if entry.statistic == statistic and entry.scope == "image":
            return name
    choices = [s for s in STATISTIC_HELP if s != "manual"]
    raise ValueError(f"unknown range statistic {statistic!r}; choose one of {', '.join(choices)}")
