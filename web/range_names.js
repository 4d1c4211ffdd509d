// Range-mode names of earlier versions (Estimate Depth per_image, Video Depth two_pass / per_frame, Colorize Depth
// auto) in a workflow being loaded, pasted or restored: the widget shows, saves and queues the current name of the
// same choice (min_max, clip, image, min_max), so the result is the same. The table comes from Python
// (GET /dav2/config "legacy_values", nodes/range_names.py from dav2_core/ranges.py), never copied here.
import { chainCallback, fetchConfig } from "./dav2_common.js";

/** The older-value table {node type: {widget: {older: current}}}, or {} when the server does not send one. */
async function legacyValues() {
  try {
    return (await fetchConfig()).legacy_values ?? {};
  } catch (err) {
    console.error("[dav2] could not read the older range-mode names; saved workflows keep them as they are:", err);
    return {};
  }
}

/** Give ``node``'s widgets named in ``renames`` ({widget: {older: current}}) the current name; true if any changed. */
export function renameOlderValues(node, renames) {
  let changed = false;
  for (const widget of node.widgets ?? []) {
    const current = renames[widget.name]?.[widget.value];
    if (typeof current !== "string") continue;
    widget.value = current;
    widget.callback?.(current);
    changed = true;
  }
  return changed;
}

/** Hook a node type whose range widgets have older names (called, awaited, from beforeRegisterNodeDef). */
export async function hookRangeNames(nodeType, nodeData) {
  const renames = (await legacyValues())[nodeData?.name];
  if (!renames) return;
  chainCallback(
    nodeType.prototype,
    "onConfigure",
    function () {
      try {
        if (renameOlderValues(this, renames)) this.setDirtyCanvas?.(true, true);
      } catch (err) {
        console.error(`[dav2] could not rename the older range-mode value of node ${this.id}:`, err);
      }
    },
    { before: true },
  );
}
