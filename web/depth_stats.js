// Depth Stats: after execution the node shows its statistics table: one row per statistic, one column per
// image (up to 16) plus the batch. Narrow for the usual single image; a wide batch scrolls inside the node.
// The plot image arrives as a normal "images" UI output and is drawn by ComfyUI's own image preview.
import { fmt4, forwardWheelToCanvas, injectStyle } from "./dav2_common.js";
import { growNode } from "./depth_preview.js";

export const STATS_WIDGET = "dav2_depth_stats";
const STATS = ["min", "max", "range", "mean", "median", "std", "p1", "p5", "p95", "p99"];
const MAX_IMAGES = 16;
const ROW_PX = 17;
const HEAD_PX = 40; // summary line + table header + padding

function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

function validText(rec) {
  const pct = rec.total_pixels ? (100 * rec.valid_pixels) / rec.total_pixels : 0;
  return `${pct.toFixed(pct === 100 ? 0 : 1)}%`;
}

/** The table DOM of a dav2_core.stats.depth_stats() record (summary line + scrollable table). */
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
  const images = (stats.images ?? []).slice(0, MAX_IMAGES);
  const columns = images.map((rec, i) => ({ label: n === 1 ? "value" : `image ${i + 1}`, rec }));
  if (n > 1 && stats.batch) columns.push({ label: "batch", rec: stats.batch, batch: true });

  const table = el("table", "dav2-stats-table");
  const hr = el("tr");
  hr.append(el("th", null, "stat"));
  for (const c of columns) hr.append(el("th", c.batch ? "dav2-batch" : null, c.label));
  const thead = el("thead");
  thead.append(hr);
  const tbody = el("tbody");
  for (const key of STATS) {
    const tr = el("tr");
    tr.dataset.stat = key;
    tr.append(el("td", null, key));
    for (const c of columns) {
      const td = el("td", c.batch ? "dav2-batch" : null, fmt4(c.rec[key]));
      if (c.rec[key] !== null && c.rec[key] !== undefined) td.title = String(c.rec[key]);
      if (c.rec.note) td.title = c.rec.note;
      tr.append(td);
    }
    tbody.append(tr);
  }
  const valid = el("tr");
  valid.dataset.stat = "valid";
  valid.append(el("td", null, "valid"));
  for (const c of columns) {
    const td = el("td", c.batch ? "dav2-batch" : null, validText(c.rec));
    td.title = `${c.rec.valid_pixels.toLocaleString()} of ${c.rec.total_pixels.toLocaleString()} pixels have a value`;
    valid.append(td);
  }
  tbody.append(valid);
  table.append(thead, tbody);
  const scroll = el("div", "dav2-stats-scroll dav2-scroll");
  scroll.append(table);
  wrap.append(head, scroll);
  if (n > MAX_IMAGES) {
    wrap.append(el("div", "dav2-stats-head", `first ${MAX_IMAGES} of ${n} images shown; all are in the STRING output`));
  }
  return wrap;
}

/** Get (or create) the stats widget of a node and show new execution output in it. */
export function showDepthStats(node, stats, text) {
  injectStyle();
  if (!node.dav2Stats) {
    const root = el("div", "dav2-stats");
    root.dataset.dav2 = "depth-stats";
    const state = { root, height: HEAD_PX + ROW_PX, columns: 1, execution: 0 };
    const widget = node.addDOMWidget(STATS_WIDGET, "dav2_stats", root, {
      serialize: false,
      hideOnZoom: false,
      // the whole table stays visible next to the plot preview ComfyUI adds below it
      getMinHeight: () => state.height,
      getMaxHeight: () => state.height + 8,
    });
    widget.serialize = false;
    forwardWheelToCanvas(root);
    node.dav2Stats = state;
  }
  const state = node.dav2Stats;
  state.execution++;
  state.root.dataset.nodeId = String(node.id);
  state.root.dataset.execution = String(state.execution);
  if (!stats) {
    const pre = el("pre", "dav2-stats-text dav2-scroll", text ?? "no statistics");
    state.root.replaceChildren(pre);
    state.height = HEAD_PX + ROW_PX * Math.min(12, (text ?? "").split("\n").length);
  } else {
    state.root.replaceChildren(buildStatsTable(stats, text));
    state.height = HEAD_PX + ROW_PX * (STATS.length + 1) + ((stats.batch_size ?? 0) > MAX_IMAGES ? ROW_PX : 0);
    const n = stats.batch_size ?? 1;
    state.columns = Math.min(n, MAX_IMAGES) + (n > 1 ? 1 : 0);
  }
  // Taller if needed; wider only up to a few columns (a wide batch table scrolls inside the node).
  growNode(node, Math.min(480, 90 + 75 * (state.columns ?? 1)));
}
