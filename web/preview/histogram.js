// The histogram strip under the depth preview: counts per 16-bit level band, drawn in the preview's colours
// (square-root heights keep small bins visible) with an optional marker at the hovered level.
import { Q_MAX } from "../dav2_common.js";

export const HIST_BINS = 128;

/** Counts of the valid pixels of ``depth`` (from loadPackedDepth) in HIST_BINS equal level bands. */
export function histogram(depth) {
  const bins = new Float64Array(HIST_BINS);
  const { q, invalid } = depth;
  const shift = Math.log2((Q_MAX + 1) / HIST_BINS);
  for (let i = 0; i < q.length; i++) {
    if (invalid && invalid[i]) continue;
    bins[q[i] >> shift]++;
  }
  return bins;
}

function rgb(lut, index, level) {
  const l = index[level] * 3;
  return `rgb(${lut[l]},${lut[l + 1]},${lut[l + 2]})`;
}

/**
 * Draw ``hist`` into ``canvas`` at its CSS size, each bin in the colour of its middle level (expanded ``lut``,
 * level ``index``). ``flat``: the map has zero range (one spike in the middle). ``markerLevel``: a white line
 * at that level, or null.
 */
export function drawHistogram(canvas, hist, lut, index, flat, markerLevel = null) {
  const cssW = Math.max(1, Math.round(canvas.clientWidth || 200));
  const cssH = Math.max(1, Math.round(canvas.clientHeight || 36));
  if (canvas.width !== cssW) canvas.width = cssW;
  if (canvas.height !== cssH) canvas.height = cssH;
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, cssW, cssH);
  const binW = cssW / HIST_BINS;
  if (flat) {
    // Zero range: one spike; draw it in the middle, where the marker goes too.
    ctx.fillStyle = rgb(lut, index, 0);
    ctx.fillRect(Math.floor(cssW / 2 - binW), 0, Math.max(2, 2 * binW), cssH);
    if (markerLevel !== null) {
      ctx.fillStyle = "#fff";
      ctx.fillRect(Math.floor(cssW / 2), 0, 1.5, cssH);
    }
    return;
  }
  let peak = 0;
  for (const c of hist) peak = Math.max(peak, c);
  for (let b = 0; b < HIST_BINS; b++) {
    if (!hist[b]) continue;
    ctx.fillStyle = rgb(lut, index, Math.round(((b + 0.5) / HIST_BINS) * Q_MAX));
    const h = Math.max(1, Math.sqrt(hist[b] / peak) * (cssH - 2));
    ctx.fillRect(b * binW, cssH - h, Math.max(1, binW - 0.5), h);
  }
  if (markerLevel !== null) {
    const x = (markerLevel / Q_MAX) * cssW;
    ctx.fillStyle = "#fff";
    ctx.fillRect(Math.min(cssW - 1, Math.max(0, x - 0.5)), 0, 1.5, cssH);
  }
}

/** Blank the strip (no data to show). */
export function clearHistogram(canvas) {
  canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
}
