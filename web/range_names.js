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

/** The table once the server answered (null until then); asked for once, when this module loads. */
let table = null;
const tableLoaded = legacyValues().then((values) => (table = values));

/**
 * Hook one of our node types (called from beforeRegisterNodeDef, without waiting: a frontend that does not wait
 * for that hook, like 1.32, would otherwise configure a reloaded workflow before the extension's other hooks are
 * in place). The rename runs before every other onConfigure hook (node_faces.js reads the renamed value); if the
 * table has not arrived yet, it runs when it does.
 */
export function hookRangeNames(nodeType, nodeData) {
  const type = nodeData?.name;
  if (typeof type !== "string" || !type.startsWith("DAV2")) return;
  chainCallback(
    nodeType.prototype,
    "onConfigure",
    function () {
      const rename = (values) => {
        try {
          const renames = values?.[type];
          if (renames && renameOlderValues(this, renames)) this.setDirtyCanvas?.(true, true);
        } catch (err) {
          console.error(`[dav2] could not rename the older range-mode value of node ${this.id}:`, err);
        }
      };
      if (table) rename(table);
      else tableLoaded.then(rename);
    },
    { before: true },
  );
}
