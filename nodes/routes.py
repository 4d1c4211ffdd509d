"""HTTP routes for the web extension: ``GET /dav2/colormaps`` serves the colormap LUTs the nodes use.

The browser recolours the depth preview with exactly the tables of ``dav2_core.colormaps`` (one source
for the Colorize Depth node, the CLI and the web UI). Registration needs ComfyUI's running
``PromptServer``; without one (in-process tests, plain imports) :func:`register_routes` does nothing.
"""
from __future__ import annotations

import sys

from aiohttp import web

from dav2_core.colormaps import lut_uint8_table

COLORMAPS_ROUTE = "/dav2/colormaps"
_registered = False


async def get_colormaps(request: web.Request) -> web.Response:
    """``GET /dav2/colormaps``: ``{name: [r0,g0,b0, ..., r255,g255,b255]}`` uint8 ints, default colormap first."""
    return web.json_response(lut_uint8_table())


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
    _registered = True
    return True
