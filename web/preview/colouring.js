// Colouring of the depth preview: the colormap LUTs served by the pack, expanded to one colour per 16-bit
// level, the level -> colour mapping of Colorize Depth (range, direction, invert), and the display samples.
import { Q_MAX, fetchPackJson, levelToValue } from "../dav2_common.js";

export const LUT_SIZE = 256;

let colormapsPromise = null;

/** The colormap LUTs served by the pack: Map name -> Uint8Array(256*3) RGB, default colormap first. */
export function fetchColormaps() {
  if (!colormapsPromise) {
    colormapsPromise = fetchPackJson("/dav2/colormaps")
      .then((table) => {
        const luts = new Map();
        for (const [name, values] of Object.entries(table)) {
          if (!Array.isArray(values) || values.length !== LUT_SIZE * 3) {
            throw new Error(`colormap ${name}: expected ${LUT_SIZE * 3} values, got ${values?.length}`);
          }
          luts.set(name, Uint8Array.from(values));
        }
        if (!luts.size) throw new Error("GET /dav2/colormaps returned no colormap");
        return luts;
      })
      .catch((err) => {
        colormapsPromise = null; // let a later preview retry
        throw err;
      });
  }
  return colormapsPromise;
}

const lut16Cache = new Map();

/**
 * The 256-entry LUT expanded to one RGB triple per 16-bit level (Uint8Array(65536*3)), interpolating
 * linearly between entries exactly like dav2_core.colormaps.colorize (level 0 = entry 0, 65535 = entry 255).
 */
export function expandLut(name, lut8) {
  const cached = lut16Cache.get(name);
  if (cached && cached.source === lut8) return cached.table;
  const table = new Uint8Array((Q_MAX + 1) * 3);
  for (let q = 0; q <= Q_MAX; q++) {
    const pos = (q / Q_MAX) * (LUT_SIZE - 1);
    const i0 = Math.min(Math.floor(pos), LUT_SIZE - 1);
    const i1 = Math.min(i0 + 1, LUT_SIZE - 1);
    const f = pos - i0;
    for (let c = 0; c < 3; c++) {
      const a = lut8[i0 * 3 + c];
      table[q * 3 + c] = Math.round(a + (lut8[i1 * 3 + c] - a) * f);
    }
  }
  lut16Cache.set(name, { source: lut8, table });
  return table;
}

/**
 * Position on the expanded LUT (0..Q_MAX, see expandLut) of every stored 16-bit level of ``entry``, coloured
 * as Colorize Depth does: the entry's ``display_min``..``display_max`` (the node's range_mode, depth units)
 * or else its own ``min``..``max`` spans the colormap, clamped outside; near at the high end unless
 * ``invert`` (``entry.larger_is_nearer``, sent by Python, says which way the values run); a zero range gives
 * the first colour. Uint16Array(Q_MAX + 1).
 */
export function levelLutIndex(entry, invert) {
  const index = new Uint16Array(Q_MAX + 1); // all zeros: the first colour
  const reverse = !entry.larger_is_nearer !== invert;
  const ranged = Number.isFinite(entry.display_min) && Number.isFinite(entry.display_max);
  if (!ranged) {
    if (entry.max === entry.min) return index;
    for (let l = 0; l <= Q_MAX; l++) index[l] = reverse ? Q_MAX - l : l;
    return index;
  }
  const lo = entry.display_min;
  const span = entry.display_max - lo;
  if (!(span > 0)) return index;
  for (let l = 0; l <= Q_MAX; l++) {
    const t = Math.min(1, Math.max(0, (levelToValue(entry, l) - lo) / span));
    index[l] = Math.round((reverse ? 1 - t : t) * Q_MAX);
  }
  return index;
}

/** Index of the full-resolution pixel under each display pixel (nearest sample, pixel centres). */
export function sampleIndex(width, height, pw, ph) {
  const xs = new Uint32Array(pw);
  for (let i = 0; i < pw; i++) xs[i] = Math.min(width - 1, Math.floor(((i + 0.5) * width) / pw));
  const idx = new Uint32Array(pw * ph);
  for (let j = 0; j < ph; j++) {
    const row = Math.min(height - 1, Math.floor(((j + 0.5) * height) / ph)) * width;
    for (let i = 0; i < pw; i++) idx[j * pw + i] = row + xs[i];
  }
  return idx;
}

/**
 * Paint the display samples of ``depth`` (from loadPackedDepth) into ``canvas`` (pw x ph) with the expanded
 * ``lut`` and the level ``index`` (levelLutIndex); pixels without a value stay transparent.
 */
export function paintDepth(canvas, depth, sample, pw, ph, lut, index) {
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(pw, ph);
  const out = img.data;
  const { q, invalid } = depth;
  for (let k = 0, o = 0; k < sample.length; k++, o += 4) {
    const src = sample[k];
    if (invalid && invalid[src]) {
      out[o + 3] = 0; // transparent: the checkerboard shows through
      continue;
    }
    const l = index[q[src]] * 3;
    out[o] = lut[l];
    out[o + 1] = lut[l + 1];
    out[o + 2] = lut[l + 2];
    out[o + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
}
