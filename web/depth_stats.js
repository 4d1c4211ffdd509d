// Depth Stats: after execution the node shows its statistics table (one row per image plus the batch).
// The plot image arrives as a normal "images" UI output and is drawn by ComfyUI's own image preview.
import { fmt4, forwardWheelToCanvas, injectStyle } from "./dav2_common.js";
import { growNode } from "./depth_preview.js";

export const STATS_WIDGET = "dav2_depth_stats";
const COLUMNS = ["min", "max", "range", "mean", "median", "std", "p1", "p5", "p95", "p99"];
const MAX_ROWS = 16;

function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

function validCell(rec) {
  const pct = rec.total_pixels ? (100 * rec.valid_pixels) / rec.total_pixels : 0;
  const td = el("td", null, `${pct.toFixed(pct === 100 ? 0 : 1)}%`);
  td.title = `${rec.valid_pixels.toLocaleString()} of ${rec.total_pixels.toLocaleString()} pixels have a value`;
  return td;
}

function recordRow(label, rec, className) {
  const tr = el("tr", className);
  tr.append(el("td", null, label));
  for (const key of COLUMNS) {
    const td = el("td", null, fmt4(rec[key]));
    if (rec[key] !== null && rec[key] !== undefined) td.title = String(rec[key]);
    tr.append(td);
  }
  tr.append(validCell(rec));
  if (rec.note) tr.title = rec.note;
  return tr;
}

/** The table DOM of a dav2_core.stats.depth_stats() record (header line + scrollable table). */
export function buildStatsTable(stats, text) {
  const wrap = el("div", "dav2-stats-body");
  const n = stats.batch_size ?? stats.images?.length ?? 0;
  const model = stats.model ? ` · ${stats.model}` : "";
  const head = el(
    "div",
    "dav2-stats-head",
    `${n} image${n === 1 ? "" : "s"} of ${stats.width}x${stats.height} · units: ${stats.units_label ?? stats.units}${model}`
  );
  if (text) head.title = text; // the node's STRING output, full text on hover
  const table = el("table", "dav2-stats-table");
  const thead = el("thead");
  const hr = el("tr");
  for (const h of ["image", ...COLUMNS, "valid"]) hr.append(el("th", null, h));
  thead.append(hr);
  const tbody = el("tbody");
  const images = stats.images ?? [];
  images.slice(0, MAX_ROWS).forEach((rec, i) => tbody.append(recordRow(String(i + 1), rec)));
  if (images.length > MAX_ROWS) {
    const tr = el("tr");
    const td = el("td", null, `… ${images.length - MAX_ROWS} more images (see the STRING output)`);
    td.colSpan = COLUMNS.length + 2;
    tr.append(td);
    tbody.append(tr);
  }
  if (images.length > 1 && stats.batch) tbody.append(recordRow("batch", stats.batch, "dav2-batch"));
  table.append(thead, tbody);
  const scroll = el("div", "dav2-stats-scroll dav2-scroll");
  scroll.append(table);
  wrap.append(head, scroll);
  return wrap;
}

/** Get (or create) the stats widget of a node and show new execution output in it. */
export function showDepthStats(node, stats, text) {
  injectStyle();
  if (!node.dav2Stats) {
    const root = el("div", "dav2-stats");
    root.dataset.dav2 = "depth-stats";
    const state = { root, rows: 1, execution: 0 };
    forwardWheelToCanvas(root);
    const widget = node.addDOMWidget(STATS_WIDGET, "dav2_stats", root, {
      serialize: false,
      hideOnZoom: false,
      getMinHeight: () => 44 + 19 * Math.min(state.rows, 8),
      getMaxHeight: () => 44 + 19 * Math.min(state.rows, MAX_ROWS + 2) + 8,
    });
    widget.serialize = false;
    node.dav2Stats = state;
  }
  const state = node.dav2Stats;
  state.execution++;
  state.root.dataset.nodeId = String(node.id);
  state.root.dataset.execution = String(state.execution);
  if (!stats) {
    state.root.replaceChildren(el("pre", "dav2-stats-text", text ?? "no statistics"));
    state.rows = (text ?? "").split("\n").length;
  } else {
    state.root.replaceChildren(buildStatsTable(stats, text));
    const images = stats.images?.length ?? 0;
    state.rows = Math.min(images, MAX_ROWS + 1) + (images > 1 ? 1 : 0);
  }
  growNode(node, 360);
  // Once laid out, widen the node to the table's natural width so no column hides behind the scroll.
  requestAnimationFrame(() => {
    const table = state.root.querySelector("table");
    if (table && table.scrollWidth > 0) growNode(node, Math.min(900, table.scrollWidth + 30));
  });
}
