// Where a pick on the depth preview goes: the Depth Bokeh and Calibrate Depth to Metric nodes fed by the
// previewed depth, found by following the graph's links; reading their focus point / reference points back
// as markers and writing new ones. Node ids and widget names come from Python (GET /dav2/config "pick").
//
// A node is a target when it is fed (through Reroute nodes and "through" nodes such as Calibrate, whose DEPTH
// keeps the pixel grid) by an output of the previewing node, or by the output that feeds the previewing node's
// ``depth`` input (so Colorize Depth's preview reaches the nodes that use the same depth). Every target gets
// the pick. The points format is Calibrate's ('x,y,metres' separated by ';' or new lines; nodes/calibrate.py).
import { workflowChanged } from "../dav2_common.js";

const REROUTE = "Reroute";

function linkOf(graph, id) {
  if (id === null || id === undefined) return null;
  return graph.getLink?.(id) ?? graph.links?.get?.(id) ?? graph.links?.[id] ?? null;
}

function typeOf(node) {
  return node?.comfyClass ?? node?.type;
}

/** The node and output slot that feed ``node``'s input ``name`` (through Reroute nodes), or null. */
function feeder(node, name) {
  const graph = node.graph;
  let input = node.inputs?.find((i) => i.name === name);
  for (let hops = 0; input && hops < 64; hops++) {
    const link = linkOf(graph, input.link);
    const origin = link ? graph.getNodeById(link.origin_id) : null;
    if (!origin) return null;
    if (typeOf(origin) !== REROUTE) return { node: origin, slot: link.origin_slot };
    input = origin.inputs?.[0];
  }
  return null;
}

/** Nodes at the end of the links leaving ``node``'s outputs (all, or only output ``slot``). */
function consumers(node, slot = null) {
  const found = [];
  (node.outputs ?? []).forEach((output, i) => {
    if (slot !== null && i !== slot) return;
    for (const id of output.links ?? []) {
      const link = linkOf(node.graph, id);
      const target = link ? node.graph.getNodeById(link.target_id) : null;
      if (target) found.push(target);
    }
  });
  return found;
}

/** {focus: [Depth Bokeh nodes], points: [Calibrate nodes]} that a pick on ``node``'s preview writes to. */
export function pickTargets(node, pick) {
  const focus = [];
  const points = [];
  if (!node?.graph || !pick) return { focus, points };
  const seen = new Set([node]);
  const queue = consumers(node);
  const source = feeder(node, "depth");
  if (source) queue.push(...consumers(source.node, source.slot));
  while (queue.length) {
    const n = queue.shift();
    if (seen.has(n)) continue;
    seen.add(n);
    const type = typeOf(n);
    if (type === pick.focus.node) focus.push(n);
    if (type === pick.points.node) points.push(n);
    if (type === REROUTE || pick.through.includes(type)) queue.push(...consumers(n));
  }
  return { focus, points };
}

/** Round half to even, as Python's round() and torch.round() do where Bokeh and Calibrate turn values into pixels. */
export function roundHalfEven(v) {
  const f = Math.floor(v);
  const d = v - f;
  return d > 0.5 || (d === 0.5 && f % 2 !== 0) ? f + 1 : f;
}

function widget(node, name) {
  return node.widgets?.find((w) => w.name === name) ?? null;
}

/**
 * Reference points of a points string as [{x, y, metres}]: entries that are not three numbers, lie outside
 * the ``width`` x ``height`` map or have no positive distance are skipped (Calibrate reports them on run).
 */
export function parsePoints(text, width, height) {
  const out = [];
  for (const entry of String(text ?? "").split(/[;\n]/)) {
    const parts = entry.split(/[,\s]+/).filter(Boolean);
    if (parts.length !== 3) continue;
    const [x, y, metres] = parts.map(Number);
    if (![x, y, metres].every(Number.isFinite) || !(metres > 0)) continue;
    const px = roundHalfEven(x);
    const py = roundHalfEven(y);
    if (px < 0 || py < 0 || px >= width || py >= height) continue;
    out.push({ x: px, y: py, metres });
  }
  return out;
}

/** A typed distance in metres ("2.5", "2,5", "2.5 m") as a number, or null when it is not a positive number. */
export function parseMetres(text) {
  const m = /^\s*(\d+(?:[.,]\d*)?|[.,]\d+)(?:e([+-]?\d+))?\s*m?\s*$/i.exec(String(text ?? ""));
  if (!m) return null;
  const value = Number(`${m[1].replace(",", ".")}${m[2] ? `e${m[2]}` : ""}`);
  return Number.isFinite(value) && value > 0 ? value : null;
}

/** Fraction 0..1 that Depth Bokeh turns back into pixel ``p`` of ``size`` (it uses round(f * (size - 1))). */
export function pixelFraction(p, size) {
  return size > 1 ? Number((p / (size - 1)).toFixed(6)) : 0;
}

/**
 * The markers of ``targets`` on a ``width`` x ``height`` map: [{kind: "focus"|"point", x, y, node, metres?}],
 * full-resolution pixels. A Bokeh in depth mode has no focus point to show.
 */
export function readMarks(targets, pick, width, height) {
  const marks = [];
  for (const n of targets.focus) {
    if (widget(n, pick.focus.mode)?.value !== pick.focus.point_mode) continue;
    const fx = Number(widget(n, pick.focus.x)?.value);
    const fy = Number(widget(n, pick.focus.y)?.value);
    if (!(fx >= 0 && fx <= 1 && fy >= 0 && fy <= 1)) continue;
    marks.push({ kind: "focus", x: roundHalfEven(fx * (width - 1)), y: roundHalfEven(fy * (height - 1)), node: n.id });
  }
  for (const n of targets.points) {
    for (const p of parsePoints(widget(n, pick.points.widget)?.value, width, height)) {
      marks.push({ kind: "point", ...p, node: n.id });
    }
  }
  return marks;
}

/** Set a widget as an edit would (the value as given: no rounding to the widget's step), marking the graph changed. */
function setWidget(node, name, value) {
  const w = widget(node, name);
  if (!w) throw new Error(`${node.type} #${node.id} has no widget ${name}`);
  const old = w.value;
  w.value = value;
  node.onWidgetChanged?.(name, value, old, w);
}

function changed(node) {
  node.setDirtyCanvas?.(true, true);
  node.graph?.change?.();
  workflowChanged();
}

/** Focus every Bokeh of ``nodes`` on pixel (x, y) of a ``width`` x ``height`` map (point mode). */
export function writeFocus(nodes, pick, x, y, width, height) {
  for (const n of nodes) {
    setWidget(n, pick.focus.mode, pick.focus.point_mode);
    setWidget(n, pick.focus.x, pixelFraction(x, width));
    setWidget(n, pick.focus.y, pixelFraction(y, height));
    changed(n);
  }
}

/** Append the reference point (x, y, metres) to the points string of every Calibrate node of ``nodes``. */
export function writePoint(nodes, pick, x, y, metres) {
  for (const n of nodes) {
    const old = String(widget(n, pick.points.widget)?.value ?? "").trim().replace(/[;\s]+$/, "");
    setWidget(n, pick.points.widget, `${old ? `${old}; ` : ""}${x},${y},${metres}`);
    changed(n);
  }
}
