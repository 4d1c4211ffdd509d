"""Colorize Depth: DEPTH (or a grey depth IMAGE) -> colour IMAGE through a matplotlib colormap LUT."""

from __future__ import annotations

import torch

from dav2_core.colormaps import COLORMAPS, DEFAULT_COLORMAP, colorize_in_range, colorize_range
from dav2_core.depth import DepthMap
from dav2_core.geometry import is_geometry_packet
from dav2_core.ranges import COLORIZE_MODES, canonical, choices_text, help_of

from .api import HAS_DYNAMIC_COMBO, image_output, io
from .preview import depth_preview_ui
from .types import SEARCH_ALIASES, depth_input, depth_value_input, help_text, range_combo, require_depth, schema


def as_depth(value: object) -> DepthMap:
    """The DepthMap to colour from a DEPTH, core geometry or IMAGE input, or a ValueError naming what was wired."""
    if isinstance(value, DepthMap) or is_geometry_packet(value):
        return require_depth(value)
    if isinstance(value, torch.Tensor):
        if value.ndim == 3 and value.shape[-1] not in (1, 3, 4):
            raise ValueError(
                f"'depth' got a tensor of shape {tuple(value.shape)}, which looks like a MASK; connect "
                "Estimate Depth's DEPTH output (or a depth IMAGE [B,H,W,3]) instead"
            )
        return DepthMap.from_image(value)
    raise ValueError(
        f"'depth' must be a DEPTH or an IMAGE, got {type(value).__name__}; connect Estimate Depth's DEPTH output"
    )


def range_inputs() -> list[io.Input]:
    """``range_mode`` and the manual bounds: a DynamicCombo that shows ``manual_min``/``manual_max`` only for
    "manual" where the running ComfyUI has one (nodes/api.py), else a combo and two floats always shown."""
    lead = "Which depth values span the colormap:"
    bounds = [
        depth_value_input(
            "manual_min", default=0.0, tooltip="manual range only: lower bound in the depth's units (metres for metric)"
        ),
        depth_value_input(
            "manual_max",
            default=1.0,
            tooltip="manual range only: upper bound in the depth's units; must be greater than manual_min",
        ),
    ]
    if HAS_DYNAMIC_COMBO:
        manual = {name: entry.statistic == "manual" for name, entry in COLORIZE_MODES.items()}
        options = [io.DynamicCombo.Option(mode, bounds if manual[mode] else []) for mode in COLORIZE_MODES]
        tooltip = lead + "\n" + help_text(help_of(COLORIZE_MODES))
        return [io.DynamicCombo.Input("range_mode", options=options, tooltip=tooltip)]
    return [range_combo("range_mode", COLORIZE_MODES, lead), *bounds]


def range_choice(
    range_mode: object, manual_min: float | None = None, manual_max: float | None = None
) -> tuple[object, float | None, float | None]:
    """(mode, manual_min, manual_max) from either shape of the inputs: the combo and two floats, or the
    DynamicCombo's ``{"range_mode": mode, "manual_min": ..., "manual_max": ...}``."""
    if isinstance(range_mode, dict):
        return range_mode.get("range_mode"), range_mode.get("manual_min"), range_mode.get("manual_max")
    return range_mode, manual_min, manual_max


class ColorizeDepth(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            node_id="DAV2ColorizeDepth",
            display_name="Colorize Depth",
            description=(
                "Colours a depth map with a colormap (Spectral_r by default: near = red, far = blue). "
                "Takes the DEPTH output of Estimate Depth, or a grey depth IMAGE (brightness = nearness)."
            ),
            search_aliases=SEARCH_ALIASES + ["colormap", "colorize", "depth visualisation", "heatmap"],
            has_intermediate_output=True,  # the depth preview comes back when the result is cached
            inputs=[
                depth_input(
                    "depth",
                    image=True,
                    tooltip="DEPTH from Estimate Depth (keeps metres for metric models), or a grey depth IMAGE "
                    "where brighter = nearer",
                ),
                io.Combo.Input(
                    "colormap",
                    options=list(COLORMAPS),
                    default=DEFAULT_COLORMAP,
                    tooltip="Colour table (matplotlib); near maps to its high end, far to its low end",
                ),
                io.Boolean.Input("invert", default=False, tooltip="Reverse the colormap (near at the low end)"),
                *range_inputs(),
            ],
            outputs=[
                io.Image.Output(display_name="image", tooltip="Coloured depth [B,H,W,3], same size as the depth"),
            ],
        )

    @classmethod
    def validate_inputs(
        cls,
        range_mode: object = None,
        manual_min: float | None = None,
        manual_max: float | None = None,
        **_other: object,
    ) -> bool | str:
        """Refuse a bad manual range when the graph is queued, before anything runs. ``**_other`` makes ComfyUI
        (0.33) hand over the DynamicCombo's ``range_mode.manual_min``/``manual_max`` too, which it then nests into
        ``range_mode``; without it only the names above would pass and the bounds would never be checked.
        Declaring ``range_mode`` makes this ComfyUI's check of it: older names (``ranges.LEGACY_NAMES``) pass, an
        unknown one is refused naming the choices. ComfyUI 0.33 drops a DynamicCombo whose value is no option
        before this runs (``range_mode`` None here), so there a missing value means an unknown one."""
        range_mode, manual_min, manual_max = range_choice(range_mode, manual_min, manual_max)
        if range_mode is None and HAS_DYNAMIC_COMBO:
            return f"range_mode is missing or unknown; choose one of {choices_text('colorize')}"
        if range_mode is not None:
            try:  # older names (ranges.LEGACY_NAMES) pass
                range_mode = canonical(range_mode, "colorize", "range_mode")
            except ValueError as exc:
                return str(exc)
        if range_mode == "manual" and manual_min is not None and manual_max is not None and manual_min >= manual_max:
            return (
                f"manual range: manual_min ({manual_min:g}) must be smaller than manual_max ({manual_max:g}); "
                "raise manual_max or lower manual_min, or use range_mode min_max"
            )
        return True

    @classmethod
    def execute(
        cls,
        depth: object,
        colormap: str,
        invert: bool,
        range_mode: object,
        manual_min: float | None = None,
        manual_max: float | None = None,
    ) -> io.NodeOutput:
        range_mode, manual_min, manual_max = range_choice(range_mode, manual_min, manual_max)
        range_mode = canonical(range_mode, "colorize", "range_mode")  # older names give the same choice
        manual = COLORIZE_MODES[range_mode].statistic == "manual"
        depth_map = as_depth(depth)
        lo, hi = colorize_range(
            depth_map, range_mode, vmin=manual_min if manual else None, vmax=manual_max if manual else None
        )
        image = colorize_in_range(depth_map, lo, hi, colormap, invert=invert)
        # the preview colours with the same range, so it shows what the IMAGE output is
        return io.NodeOutput(image_output(image), ui=depth_preview_ui(depth_map, display_range=(lo, hi)))
