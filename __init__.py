"""ComfyUI entry point of the Depth Anything V2 node pack.

ComfyUI imports this folder from ``custom_nodes/``. It registers ``NODE_CLASS_MAPPINGS`` when present
(and then ignores ``comfy_entrypoint``), so both are exported, built from the same V3 node classes.
Imported outside ComfyUI (pytest imports a folder's ``__init__.py`` when collecting tests below it;
packaging tools) there is nothing to register.
"""

import importlib.util
import os
import sys

WEB_DIRECTORY = "./web"
NODE_CLASS_MAPPINGS: dict = {}
NODE_DISPLAY_NAME_MAPPINGS: dict = {}
__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]

if importlib.util.find_spec("comfy_api") is not None:  # inside ComfyUI
    # dav2_core ships inside this folder; make it importable when the pack is not pip-installed.
    if importlib.util.find_spec("dav2_core") is None:
        sys.path.append(os.path.dirname(os.path.abspath(__file__)))

    from .nodes import DepthAnythingV2Extension, node_mappings

    NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = node_mappings()

    async def comfy_entrypoint() -> DepthAnythingV2Extension:
        return DepthAnythingV2Extension()

    __all__ += ["comfy_entrypoint"]
