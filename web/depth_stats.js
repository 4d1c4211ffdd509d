// Depth Stats: after execution the node shows its statistics table: one row per statistic, one column per
// image (up to the pack's preview cap) plus the batch. Narrow for the usual single image; a wide batch scrolls
// inside the node. The rows and the cap come from Python (GET /dav2/config), never copied here.
// The plot image arrives as a normal "images" UI output and is drawn by ComfyUI's own image preview.
import { el, ensureMounted, fetchConfig, fmt4, forwardWheelToCanvas, growNode } from "./dav2_common.js";

export const STATS_WIDGET = "dav2_depth_stats";
const ROW_PX = 17;
const HEAD_PX = 40; // summary line + table header + padding
const CHAR_PX = 6.7; // a monospace character of the text view (11px)
const MAX_TEXT_WIDTH = 560; // a wider report scrolls inside the node

function validText(rec) {
  const pct = rec.total_pixels ? (100 * rec.valid_pixels) / rec.total_pixels : 0;
  return `${pct.toFixed(pct === 100 ? 0 : 1)}%`;
}

function cell(column, text) {
  return el("td", column.batch ? "dav2-batch" : null, text);
}

/**
 * The table DOM of a dav2_core.stats.depth_stats() record (summary line + scrollable table): ``statKeys``
 * rows in that order plus "valid", at most ``maxImages`` image columns plus the batch.
 */
export function buildStatsTable(stats, text, statKeys, maxImages) {
  const wrap = el("div", "dav2-stats-body");
  const n = stats.batch_size ?? stats.images?.length ?? 0;
  const model = stats.model ? ` · ${stats.model}` : "";
  const head = el(
    "div",
    "dav2-stats-head",
    `${n} image${n === 1 ? "" : "s"} of ${stats.width}x${stats.height} · units: ${stats.units_label ?? stats.units}${model}`
  );
  if (text) head.title = text; // the node's STRING output, full text on hover
  const images = (stats.images ?? []).slice(0, maxImages);
  const columns = images.map((rec, i) => ({ label: n === 1 ? "value" : `image ${i + 1}`, rec }));
  if (n > 1 && stats.batch) columns.push({ label: "batch", rec: stats.batch, batch: true });

  const table = el("table", "dav2-stats-table");
  const hr = el("tr");
  hr.append(el("th", null, "stat"));
  for (const c of columns) hr.append(el("th", c.batch ? "dav2-batch" : null, c.label));
  const thead = el("thead");
  thead.append(hr);
  const tbody = el("tbody");
  for (const key of statKeys) {
    const tr = el("tr");
    tr.dataset.stat = key;
    tr.append(el("td", null, key));
    for (const c of columns) {
      const td = cell(c, fmt4(c.rec[key]));
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
    const td = cell(c, validText(c.rec));
    td.title = `${c.rec.valid_pixels.toLocaleString()} of ${c.rec.total_pixels.toLocaleString()} pixels have a value`;
    valid.append(td);
  }
  tbody.append(valid);
  table.append(thead, tbody);
  const scroll = el("div", "dav2-stats-scroll dav2-scroll");
  scroll.append(table);
  wrap.append(head, scroll);
  if (n > maxImages) {
    wrap.append(el("div", "dav2-stats-head", `first ${maxImages} of ${n} images shown; all are in the STRING output`));
  }
  return wrap;
}

function createStatsWidget(node) {
  const root = el("div", "dav2-stats");
  root.dataset.dav2 = "depth-stats";
  const state = { root, height: HEAD_PX + ROW_PX, width: 165, execution: 0 };
  const widget = node.addDOMWidget(STATS_WIDGET, "dav2_stats", root, {
    serialize: false,
    hideOnZoom: false,
    // the whole table stays visible next to the plot preview ComfyUI adds below it
    getMinHeight: () => state.height,
    getMaxHeight: () => state.height + 8,
  });
  widget.serialize = false;
  forwardWheelToCanvas(root);
  ensureMounted(node, root);
  return state;
}

/** Get (or create) the stats widget of a node and show new execution output (or a restored one) in it. */
export async function showDepthStats(node, stats, text) {
  if (!node.dav2Stats) node.dav2Stats = createStatsWidget(node);
  const state = node.dav2Stats;
  const execution = ++state.execution;
  const { stat_keys: statKeys, max_preview_images: maxImages } = await fetchConfig();
  if (execution !== state.execution) return; // a newer output arrived meanwhile
  state.root.dataset.dav2Node = String(node.id);
  if (!stats) {
    const pre = el("pre", "dav2-stats-text dav2-scroll", text ?? "no statistics");
    state.root.replaceChildren(pre);
    const lines = (text ?? "").split("\n");
    state.height = HEAD_PX + ROW_PX * Math.min(12, lines.length);
    // as wide as the report's table rows (Evaluate Depth), up to a limit
    state.width = Math.min(MAX_TEXT_WIDTH, 30 + CHAR_PX * Math.max(20, ...lines.map((l) => l.length)));
  } else {
    state.root.replaceChildren(buildStatsTable(stats, text, statKeys, maxImages));
    state.height = HEAD_PX + ROW_PX * (statKeys.length + 1) + ((stats.batch_size ?? 0) > maxImages ? ROW_PX : 0);
    const n = stats.batch_size ?? 1;
    state.width = Math.min(480, 90 + 75 * (Math.min(n, maxImages) + (n > 1 ? 1 : 0)));
  }
  state.root.style.minHeight = `${state.height}px`; // Nodes 2.0 lays the widget out by its CSS size
  state.root.dataset.execution = String(state.execution);
  // Taller if needed; wider only up to a few columns (a wide batch table scrolls inside the node).
  growNode(node, state.width, 0, state.root, state.height);
}
