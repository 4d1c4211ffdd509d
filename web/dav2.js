// Depth Anything V2 pack: registers the frontend extension. A node whose UI output holds "dav2_depth"
// (nodes/preview.py) gets the interactive depth preview; "dav2_stats" gets the statistics table; "dav2_report"
// (Calibrate, Evaluate) gets its text report shown in the same box the stats table uses.
// The keys are ours alone, so the hooks act on any node type that sends them and ignore all others:
// no dependence on the folder name the pack was installed under. Widgets holding an older range-mode name are
// renamed when a workflow loads (range_names.js).
//
// What a node last showed is kept in its properties (``dav2_output``), so it comes back after a page reload,
// a workflow tab switch, undo, or loading a saved workflow (frontends that restore outputs themselves call
// onNodeOutputsUpdated, handled the same way). Showing the same output twice is a no-op.
import { app } from "../../scripts/app.js";
import { chainCallback, ensureStylesheet, fetchConfig, workflowChanged } from "./dav2_common.js";
import { showDepthPreview } from "./depth_preview.js";
import { showDepthStats } from "./depth_stats.js";
import { hookNodeFaces } from "./node_faces.js";
import { hookRangeNames } from "./range_names.js";

const EXTENSION = "dav2.DepthAnythingV2";
/** Node property holding the last output our widgets showed (the parts of the UI output that are ours). */
export const SAVED_OUTPUT = "dav2_output";
/** The STRING output kept with restored stats is cut to this many characters (the table has the numbers). */
const MAX_SAVED_TEXT = 4000;

/** Our part of a node's UI output ({dav2_depth?, dav2_stats?, text?, dav2_report?}), or null when it has none. */
function ourPart(node, output) {
  if (!output) return null;
  const part = {};
  if (Array.isArray(output.dav2_depth)) part.dav2_depth = output.dav2_depth;
  if (Array.isArray(output.dav2_stats)) part.dav2_stats = output.dav2_stats;
  if (Array.isArray(output.dav2_report)) part.dav2_report = output.dav2_report;
  else if (part.dav2_stats || (output.text && node.dav2Stats)) {
    if (Array.isArray(output.text)) part.text = output.text;
    if (!part.dav2_stats) part.dav2_stats = [null];
  }
  return Object.keys(part).length ? part : null;
}

/** Show our part of an output on the node; unless ``fresh``, not when the node shows exactly that already. */
function show(node, part, fresh) {
  const signature = JSON.stringify(part);
  if (!fresh && node.dav2Shown === signature) return;
  node.dav2Shown = signature;
  const tasks = [];
  if (part.dav2_depth) tasks.push(showDepthPreview(node, part.dav2_depth));
  if (part.dav2_stats) tasks.push(showDepthStats(node, part.dav2_stats[0] ?? null, part.text?.[0] ?? null));
  if (part.dav2_report) tasks.push(showDepthStats(node, null, String(part.dav2_report[0] ?? "")));
  Promise.all(tasks).catch((err) => console.error(`[dav2] could not show the output of node ${node.id}:`, err));
}

/** A copy of ``part`` small enough to live in the workflow: the stats of the shown images only, text cut. */
async function savedCopy(part) {
  const saved = { ...part };
  const stats = part.dav2_stats?.[0];
  if (stats?.images) {
    const { max_preview_images: cap } = await fetchConfig();
    saved.dav2_stats = [{ ...stats, images: stats.images.slice(0, cap) }];
  }
  const cut = (t) => (t.length > MAX_SAVED_TEXT ? `${t.slice(0, MAX_SAVED_TEXT)}…` : t);
  if (part.text) saved.text = part.text.map(cut);
  if (part.dav2_report) saved.dav2_report = part.dav2_report.map((t) => cut(String(t)));
  return saved;
}

function remember(node, part) {
  savedCopy(part)
    .then((saved) => {
      if (!node.properties) return;
      node.properties[SAVED_OUTPUT] = saved;
      workflowChanged(); // the frontend persists the workflow on change
    })
    .catch((err) => console.error(`[dav2] could not keep the output of node ${node.id} in the workflow:`, err));
}

/** An output from the server (``fresh``: just executed): show it and keep it in the node's properties. */
function handleOutput(node, output, fresh) {
  const part = ourPart(node, output);
  if (!part) return;
  show(node, part, fresh);
  remember(node, part);
}

/** A node was configured from a workflow (load, reload, tab switch, undo, paste): show what it kept. */
function restore(node) {
  const part = node.properties?.[SAVED_OUTPUT];
  if (part && typeof part === "object") show(node, part, false);
}

/** The node of a node locator id ("12", or "<subgraph uuid>:12" inside a subgraph), if it is in view. */
function nodeByLocator(locator) {
  const id = String(locator).split(":").pop();
  return app.graph?.getNodeById?.(id) ?? app.canvas?.graph?.getNodeById?.(id) ?? null;
}

function register() {
  if (app.extensions?.some((e) => e.name === EXTENSION)) {
    // The pack's web folder was loaded a second time (e.g. installed under two folder names): one is enough.
    console.info(`[dav2] ${EXTENSION} is already registered; skipping the second copy`);
    return;
  }
  ensureStylesheet();
  app.registerExtension({
    name: EXTENSION,
    async beforeRegisterNodeDef(nodeType, nodeData) {
      hookNodeFaces(nodeType, nodeData);
      hookRangeNames(nodeType, nodeData); // older range-mode values renamed before node_faces.js reads them
      chainCallback(nodeType.prototype, "onExecuted", function (output) {
        try {
          handleOutput(this, output, true);
        } catch (err) {
          console.error(`[dav2] could not show the output of node ${this.id} (${nodeData.name}):`, err);
        }
      });
      chainCallback(nodeType.prototype, "onConfigure", function () {
        // after the whole graph is configured: sizes, links and the node's graph are final
        setTimeout(() => {
          try {
            restore(this);
          } catch (err) {
            console.error(`[dav2] could not restore the preview of node ${this.id} (${nodeData.name}):`, err);
          }
        }, 0);
      });
    },
    // Frontends that restore outputs themselves (e.g. a job opened from the queue) report them here.
    onNodeOutputsUpdated(nodeOutputs) {
      for (const [locator, output] of Object.entries(nodeOutputs ?? {})) {
        const node = nodeByLocator(locator);
        if (node) handleOutput(node, output, false);
      }
    },
  });
}

register();
