"""HTTP routes for the web extension (``web/``), so it copies no constant from Python.

* ``GET /dav2/colormaps``: the colormap LUTs the nodes use (one source for Colorize Depth, the CLI and the
  browser's recolouring).
* ``GET /dav2/config``: the statistics keys in display order, the batch preview cap, where a click on
  the depth preview writes (:data:`PICK_TARGETS`), and the older range-mode values a loaded workflow's widgets
  are renamed from (``range_names.legacy_values``).
* ``GET /dav2/preview_files?names=a.png/b.png``: which packed preview PNGs are still in the temp folder
  (ComfyUI empties it on start; a restored preview whose file is gone shows a placeholder instead of a
  failed request).

Registration needs ComfyUI's running ``PromptServer``; without one (in-process tests, plain imports)
:func:`register_routes` does nothing. It also adds the ``on_prompt`` handler that renames older range-mode
values in queued prompts (``range_names.current_names``).
"""

from __future__ import annotations

import re
import sys

from aiohttp import web

from dav2_core.colormaps import lut_uint8_table
from dav2_core.paths import PathRefused, confine
from dav2_core.stats import STAT_KEYS

from .preview import MAX_PREVIEW_IMAGES, PREVIEW_SUBFOLDER
from .range_names import current_names, legacy_values

COLORMAPS_ROUTE = "/dav2/colormaps"
CONFIG_ROUTE = "/dav2/config"
PREVIEW_FILES_ROUTE = "/dav2/preview_files"
#: File names nodes/preview.py writes (anything else is never looked up).
_PREVIEW_NAME = re.compile(r"dav2_depth_[0-9a-f]{12}_\d{2,}\.png")
#: At most this many names per request (a batch previews at most MAX_PREVIEW_IMAGES).
_MAX_NAMES = 64
_registered = False
#: Where picking on the depth preview writes (web/preview/targets.js): "focus" = Depth Bokeh's focus point
#: (mode widget set to point_mode, x/y as fractions 0..1), "points" = Calibrate Depth to Metric's reference
#: points string ('x,y,metres; ...', pixels). "through": nodes whose DEPTH output keeps the pixel grid of
#: their input, so picks reach the nodes after them. tests/comfy/test_nodes_api.py checks these against the schemas.
PICK_TARGETS = {
    "focus": {"node": "DAV2DepthBokeh", "mode": "focus_mode", "point_mode": "point", "x": "focus_x", "y": "focus_y"},
    "points": {"node": "DAV2CalibrateDepth", "widget": "points"},
    "through": ["DAV2CalibrateDepth"],
}


def web_config() -> dict:
    """What ``GET /dav2/config`` answers: ``stat_keys`` (list), ``max_preview_images`` (int), ``pick``
    (:data:`PICK_TARGETS`) and ``legacy_values`` (``{node id: {input: {older value: current value}}}``)."""
    return {
        "stat_keys": list(STAT_KEYS),
        "max_preview_images": MAX_PREVIEW_IMAGES,
        "pick": PICK_TARGETS,
        "legacy_values": legacy_values(),
    }


def preview_files_present(names: list[str], temp_dir: str) -> dict[str, bool]:
    """``{name: exists}`` for packed preview file names under ``temp_dir/dav2_preview``; names that are not
    preview file names, or that resolve outside the temp folder (``dav2_core.paths``: a link leading out),
    are answered False without touching the disk."""
    answer = {}
    for name in names[:_MAX_NAMES]:
        answer[name] = False
        if _PREVIEW_NAME.fullmatch(name):
            try:
                path = confine(f"{PREVIEW_SUBFOLDER}/{name}", {"temp": temp_dir}, "temp", "preview file")
            except PathRefused:
                continue
            answer[name] = path.is_file()
    return answer


async def get_colormaps(request: web.Request) -> web.Response:
    """``GET /dav2/colormaps``: ``{name: [r0,g0,b0, ..., r255,g255,b255]}`` uint8 ints, default colormap first."""
    return web.json_response(lut_uint8_table())


async def get_config(request: web.Request) -> web.Response:
    """``GET /dav2/config``: see :func:`web_config`."""
    return web.json_response(web_config())


async def get_preview_files(request: web.Request) -> web.Response:
    """``GET /dav2/preview_files?names=a.png/b.png``: see :func:`preview_files_present`."""
    import folder_paths  # ComfyUI's

    names = [n for n in request.query.get("names", "").split("/") if n]
    return web.json_response(preview_files_present(names, folder_paths.get_temp_directory()))


def register_routes() -> bool:
    """Add the routes to ComfyUI's ``PromptServer.instance`` if a server exists; True when registered.

    Safe to call more than once and safe without ComfyUI's ``server`` module loaded (returns False).
    """
    global _registered
    if _registered:
        return True
    server_module = sys.modules.get("server")  # ComfyUI's server.py, only loaded inside a running ComfyUI
    prompt_server = getattr(getattr(server_module, "PromptServer", None), "instance", None)
    if prompt_server is None:
        return False
    prompt_server.routes.get(COLORMAPS_ROUTE)(get_colormaps)
    prompt_server.routes.get(CONFIG_ROUTE)(get_config)
    prompt_server.routes.get(PREVIEW_FILES_ROUTE)(get_preview_files)
    prompt_server.add_on_prompt_handler(current_names)
    _registered = True
    return True
