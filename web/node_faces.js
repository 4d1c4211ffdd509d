// Node faces: a node with a "resolution" combo (Estimate Depth, Video Depth) shows each mode's own options only
// in that mode: max_side in native, tile_size / tile_overlap / max_tiles in tiled. The widgets stay on the node
// (same order, same values), are only marked hidden, so they are still serialised: saved workflows and the API
// prompt are unchanged. While "resolution" is linked (converted to an input) every option is shown.
//
// Frontends mark a widget hidden in different places: ``widget.hidden`` (the canvas on every frontend, and
// Nodes 2.0 on 1.58, where it is a setter into the widget store), ``widget.options.hidden`` (Nodes 2.0 on 1.32
// and 1.49, which read the widget store's copy: ``widget._state`` on 1.49). We set all that exist.

import { chainCallback } from "./dav2_common.js";

/** Options that only one resolution mode uses. */
const MODE_WIDGETS = { max_side: ["native"], tile_size: ["tiled"], tile_overlap: ["tiled"], max_tiles: ["tiled"] };

/** Whether ``node`` has our resolution combo and mode widgets (matched by names and combo values). */
function hasModes(node) {
  const resolution = node.widgets?.find((w) => w.name === "resolution");
  const values = resolution?.options?.values;
  if (!Array.isArray(values) || !values.includes("tiled") || !values.includes("native")) return false;
  return node.widgets.some((w) => w.name in MODE_WIDGETS);
}

function resolutionLinked(node) {
  const input = node.inputs?.find((i) => i.widget?.name === "resolution" || i.name === "resolution");
  return input?.link != null;
}

/** Marks our own collapse of a hidden widget (see setHidden). */
const COLLAPSED = Symbol("dav2.collapsed");

function setHidden(widget, hidden) {
  if (!!widget.hidden === hidden && !!widget.options?.hidden === hidden) return false;
  widget.hidden = hidden;
  // The 1.32 canvas skips hidden widgets when drawing but still lays them out (a gap, and the node grows back
  // to hold them): a hidden widget takes no height there, the classic way (computeSize [0, -4]).
  if (hidden && !Object.hasOwn(widget, "computeSize")) {
    widget.computeSize = () => [0, -4];
    widget[COLLAPSED] = true;
  } else if (!hidden && widget[COLLAPSED]) {
    delete widget.computeSize;
    delete widget[COLLAPSED];
  }
  if (widget.options) widget.options.hidden = hidden;
  const state = widget._state?.options; // 1.49's widget store (a reactive copy Nodes 2.0 renders from)
  if (state && state !== widget.options) state.hidden = hidden;
  return true;
}

/** Show the mode widgets ``node``'s resolution uses and hide the others; ``fit``: resize the node to them. */
export function applyNodeFace(node, fit = true) {
  if (!hasModes(node)) return;
  const mode = node.widgets.find((w) => w.name === "resolution").value;
  const all = resolutionLinked(node);
  let changed = false;
  for (const w of node.widgets) {
    const modes = MODE_WIDGETS[w.name];
    if (modes) changed = setHidden(w, !all && !modes.includes(mode)) || changed;
  }
  if (!changed) return;
  fitNode(node, fit);
  refreshVueNode(node);
}

/** Names of the mode widgets ``node``'s Nodes 2.0 element shows, or null on the classic canvas. */
function vueShown(node) {
  const element = document.querySelector(`.lg-node[data-node-id="${node.id}"]`);
  if (!element) return null;
  const text = new Set(element.innerText.split("\n").map((s) => s.trim()));
  return Object.keys(MODE_WIDGETS).filter((n) => text.has(n));
}

/**
 * Nodes 2.0 on frontends that do not watch a widget's hidden flag (1.32: it reads the widget list once): when
 * the node's element still shows other mode widgets than it should after two frames, announce the node to
 * the graph again (``graph.onNodeAdded``, which the Vue node manager hooks) so its widgets are read afresh.
 * Options folded away as "advanced" are neither shown nor expected.
 */
function refreshVueNode(node) {
  if (!document.querySelector(`.lg-node[data-node-id="${node.id}"]`)) return;
  requestAnimationFrame(() => requestAnimationFrame(() => {
    const shown = vueShown(node);
    if (!shown || !node.graph) return;
    const stale = node.widgets.some((w) => w.name in MODE_WIDGETS && !w.hidden && !shown.includes(w.name) && !(w.advanced || w.options?.advanced))
      || shown.some((n) => node.widgets.find((w) => w.name === n)?.hidden);
    if (stale) node.graph.onNodeAdded?.(node);
  }));
}

/** Size ``node`` to its shown widgets: never narrower than the user made it; as tall as they need
 * (``shrink`` false: only grown when they do not fit). Nodes 2.0 sizes its nodes by their content itself. */
function fitNode(node, shrink) {
  if (node.size && node.computeSize) {
    const least = node.computeSize();
    const height = shrink ? least[1] : Math.max(node.size[1], least[1]);
    node.setSize([Math.max(node.size[0], least[0]), height]);
  }
  node.graph?.setDirtyCanvas?.(true, true);
  node.setDirtyCanvas?.(true, true);
}

/** Hook a node type whose nodes may have mode widgets (called from beforeRegisterNodeDef). */
export function hookNodeFaces(nodeType, nodeData) {
  const inputs = { ...(nodeData?.input?.required ?? {}), ...(nodeData?.input?.optional ?? {}) };
  if (!("resolution" in inputs) || !Object.keys(MODE_WIDGETS).some((n) => n in inputs)) return;
  const safely = (node, fit) => {
    try {
      applyNodeFace(node, fit);
    } catch (err) {
      console.error(`[dav2] could not show the options of node ${node.id}'s resolution mode:`, err);
    }
  };
  chainCallback(nodeType.prototype, "onNodeCreated", function () {
    const resolution = this.widgets?.find((w) => w.name === "resolution");
    const node = this;
    if (resolution) chainCallback(resolution, "callback", () => safely(node, true));
    safely(this, true);
    // the frontend sizes a new node after onNodeCreated, for all its widgets: fit it once that is done
    // (a node configured from a workflow meanwhile keeps its saved size)
    setTimeout(() => {
      if (!this.dav2Configured && hasModes(this)) fitNode(this, true);
    }, 0);
  });
  chainCallback(nodeType.prototype, "onConfigure", function () {
    this.dav2Configured = true;
    safely(this, false); // a loaded workflow keeps its saved size (grown only if its widgets need more)
  });
  chainCallback(nodeType.prototype, "onConnectionsChange", function () {
    safely(this, false);
  });
}
