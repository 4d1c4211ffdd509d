"""The older range-mode values of the nodes (``dav2_core.ranges.LEGACY_NAMES``), where ComfyUI meets them.

Earlier versions of the pack offered ``per_image`` (Estimate Depth), ``two_pass`` / ``per_frame`` (Video Depth)
and ``auto`` (Colorize Depth); saved workflows and API prompts still hold them. Three places take them:

* the web extension renames them when a workflow loads (web/range_names.js, table from ``GET /dav2/config``:
  :func:`legacy_values`), so the node shows the current name;
* :func:`current_names`, an ``on_prompt`` handler of ComfyUI's server, renames them in every queued prompt
  before ComfyUI validates it. Needed on ComfyUI 0.33, where Colorize's ``range_mode`` is a DynamicCombo: its
  executor drops a DynamicCombo whose value is no option before any node code runs. The queue and history then
  hold the current names, and an old and a new prompt share the cache;
* each node's ``validate_inputs`` declares the input, which makes it ComfyUI's check of that input instead of
  the option list: older names pass (a prompt that did not come through ``/prompt``), unknown ones are refused
  naming the choices.
"""

from __future__ import annotations

from typing import Any

from dav2_core.ranges import LEGACY_NAMES

#: The node inputs that hold a range name: ``{node id: {input: dav2_core.ranges front end}}``.
RANGE_INPUTS: dict[str, dict[str, str]] = {
    "DAV2EstimateDepth": {"normalization": "estimate"},
    "DAV2VideoDepth": {"normalization": "video"},
    "DAV2ColorizeDepth": {"range_mode": "colorize"},
}


def legacy_values() -> dict[str, dict[str, dict[str, str]]]:
    """``{node id: {input: {older name: current name}}}`` for the inputs that have older names."""
    table = {}
    for node, inputs in RANGE_INPUTS.items():
        renamed = {name: dict(LEGACY_NAMES[front_end]) for name, front_end in inputs.items() if LEGACY_NAMES[front_end]}
        if renamed:
            table[node] = renamed
    return table


def current_names(json_data: Any) -> Any:
    """``on_prompt`` handler: the POSTed ``{"prompt": {id: {"class_type", "inputs"}}}`` with every older range
    name of our nodes replaced by its current name (in place; returned as ComfyUI expects). Anything else, and
    anything malformed, is left for ComfyUI's validation."""
    prompt = json_data.get("prompt") if isinstance(json_data, dict) else None
    if not isinstance(prompt, dict):
        return json_data
    table = legacy_values()
    for node in prompt.values():
        renames = table.get(node.get("class_type")) if isinstance(node, dict) else None
        inputs = node.get("inputs") if renames else None
        if not isinstance(inputs, dict):
            continue
        for name, older in renames.items():
            value = inputs.get(name)
            if isinstance(value, str) and value in older:
                inputs[name] = older[value]
    return json_data
