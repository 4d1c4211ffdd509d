// Shared helpers of the Depth Anything V2 web extension: colormap LUTs, the packed 16-bit depth PNG, formatting.
// Data contract (nodes/preview.py): each preview entry names a PNG in ComfyUI's temp folder whose
// R = high byte and G = low byte of q = round(65535 * (d - min) / (max - min)); B = 255 marks "no value".
import { api } from "../../scripts/api.js";
import { app } from "../../scripts/app.js";

export const Q_MAX = 65535;
export const LUT_SIZE = 256;

let colormapsPromise = null;

/** The colormap LUTs served by the pack: Map name -> Uint8Array(256*3) RGB, default colormap first. */
export function fetchColormaps() {
  if (!colormapsPromise) {
    colormapsPromise = api
      .fetchApi("/dav2/colormaps", { cache: "no-store" })
      .then(async (res) => {
        if (!res.ok) throw new Error(`GET /dav2/colormaps failed: HTTP ${res.status}`);
        const table = await res.json();
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

/** URL of a temp/output file through ComfyUI's /view endpoint (no "preview" param: the exact bytes). */
export function viewUrl(entry) {
  const params = new URLSearchParams({
    filename: entry.filename,
    type: entry.type ?? "temp",
    subfolder: entry.subfolder ?? "",
  });
  return api.apiURL(`/view?${params}`);
}

/**
 * Fetch and decode one packed depth PNG at full resolution.
 * Returns {width, height, q: Uint16Array(W*H), invalid: Uint8Array(W*H) | null, invalidCount}.
 */
export async function loadPackedDepth(entry) {
  const res = await fetch(viewUrl(entry), { cache: "no-store" });
  if (!res.ok) throw new Error(`depth preview ${entry.filename}: HTTP ${res.status}`);
  const bitmap = await createImageBitmap(await res.blob(), {
    colorSpaceConversion: "none",
    premultiplyAlpha: "none",
  });
  try {
    const { width, height } = bitmap;
    if (width !== entry.width || height !== entry.height) {
      throw new Error(
        `depth preview ${entry.filename} is ${width}x${height}, expected ${entry.width}x${entry.height}`
      );
    }
    const canvas = new OffscreenCanvas(width, height);
    const ctx = canvas.getContext("2d", { willReadFrequently: true });
    ctx.drawImage(bitmap, 0, 0);
    const rgba = ctx.getImageData(0, 0, width, height).data;
    const n = width * height;
    const q = new Uint16Array(n);
    let invalid = null;
    let invalidCount = 0;
    for (let i = 0, j = 0; i < n; i++, j += 4) {
      q[i] = (rgba[j] << 8) | rgba[j + 1];
      if (rgba[j + 2] === 255) {
        if (!invalid) invalid = new Uint8Array(n);
        invalid[i] = 1;
        invalidCount++;
      }
    }
    return { width, height, q, invalid, invalidCount };
  } finally {
    bitmap.close();
  }
}

/** Depth value of a 16-bit level in the entry's units (exact to (max - min) / 131070). */
export function levelToValue(entry, q) {
  return entry.min + (q / Q_MAX) * (entry.max - entry.min);
}

/** Decimal places that show one quantisation step of this entry's range (2..8). */
export function valueDecimals(entry) {
  const step = (entry.max - entry.min) / Q_MAX;
  if (!(step > 0)) return 4;
  return Math.max(2, Math.min(8, Math.ceil(-Math.log10(step)) + 1));
}

export function unitsSuffix(units) {
  return units === "m" ? " m" : " (relative)";
}

/** Compact number for tables: 4 significant digits, '-' for null/undefined/NaN. */
export function fmt4(x) {
  if (x === null || x === undefined || !Number.isFinite(x)) return "-";
  const a = Math.abs(x);
  if (a !== 0 && (a >= 1e5 || a < 1e-3)) return x.toExponential(3);
  return Number(x.toPrecision(4)).toString();
}

/**
 * Let the mouse wheel over one of our widgets zoom/pan the canvas as it does everywhere else (the DOM
 * widget would swallow it). Inside a ``.dav2-scroll`` box, wheel events it can still scroll stay there.
 */
export function forwardWheelToCanvas(element) {
  element.addEventListener(
    "wheel",
    (e) => {
      const scrollable = e.target?.closest?.(".dav2-scroll");
      if (scrollable) {
        const canY = e.deltaY < 0 ? scrollable.scrollTop > 0 : scrollable.scrollTop + scrollable.clientHeight < scrollable.scrollHeight;
        const canX = e.deltaX < 0 ? scrollable.scrollLeft > 0 : scrollable.scrollLeft + scrollable.clientWidth < scrollable.scrollWidth;
        if ((e.deltaY && canY) || (e.deltaX && canX)) return;
      }
      const target = app.canvas?.canvas;
      if (!target) return;
      e.preventDefault();
      e.stopPropagation();
      const { clientX, clientY, deltaX, deltaY, deltaMode, ctrlKey, metaKey, shiftKey, altKey } = e;
      target.dispatchEvent(
        new WheelEvent("wheel", { clientX, clientY, deltaX, deltaY, deltaMode, ctrlKey, metaKey, shiftKey, altKey, bubbles: true, cancelable: true })
      );
    },
    { passive: false }
  );
}

let styleInjected = false;

/** Add the extension's stylesheet once (scoped by the dav2- class prefix; uses ComfyUI's theme variables). */
export function injectStyle() {
  if (styleInjected) return;
  styleInjected = true;
  const style = document.createElement("style");
  style.id = "dav2-style";
  style.textContent = `
.dav2-preview, .dav2-stats { box-sizing: border-box; width: 100%; height: 100%; display: flex; flex-direction: column;
  gap: 4px; padding: 2px 4px; font: 11px/1.3 system-ui, sans-serif; color: var(--input-text, #ddd); overflow: hidden; }
.dav2-toolbar { display: flex; gap: 6px; align-items: center; flex-wrap: wrap; min-height: 22px; }
.dav2-toolbar select { background: var(--comfy-input-bg, #222); color: var(--input-text, #ddd);
  border: 1px solid var(--border-color, #444); border-radius: 4px; font-size: 11px; padding: 1px 2px; }
.dav2-toolbar label { display: flex; gap: 3px; align-items: center; cursor: pointer; }
.dav2-status { opacity: 0.75; margin-left: auto; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.dav2-status.dav2-error { color: #ff6b6b; opacity: 1; }
.dav2-view { position: relative; flex: 1 1 auto; min-height: 40px; display: flex; align-items: center; justify-content: center;
  background: repeating-conic-gradient(#2a2a2a 0% 25%, #333 0% 50%) 50% / 12px 12px; border-radius: 4px; overflow: hidden; }
.dav2-view canvas.dav2-depth { display: block; image-rendering: auto; cursor: crosshair; }
.dav2-view canvas.dav2-relief { display: block; cursor: grab; }
.dav2-loading .dav2-view canvas, .dav2-loading .dav2-hist { opacity: 0.3; }
.dav2-hist { flex: 0 0 auto; height: 36px; width: 100%; display: block; border-radius: 3px; background: rgba(0,0,0,0.25); }
.dav2-axis { display: flex; justify-content: space-between; opacity: 0.8; font-variant-numeric: tabular-nums; }
.dav2-readout { min-height: 15px; font-variant-numeric: tabular-nums; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.dav2-stats-head { opacity: 0.85; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.dav2-stats-body { display: flex; flex-direction: column; gap: 2px; min-height: 0; flex: 1 1 auto; }
.dav2-stats-scroll { flex: 1 1 auto; overflow: auto; min-height: 0; }
.dav2-stats table { border-collapse: collapse; font-variant-numeric: tabular-nums; width: 100%; }
.dav2-stats th, .dav2-stats td { padding: 0 6px; height: 16px; text-align: right; border-bottom: 1px solid var(--border-color, #444); white-space: nowrap; }
.dav2-stats th { position: sticky; top: 0; background: var(--comfy-menu-bg, #353535); font-weight: 600; }
.dav2-stats th:first-child, .dav2-stats td:first-child { text-align: left; opacity: 0.85; }
.dav2-stats .dav2-batch { font-weight: 600; border-left: 2px solid var(--border-color, #555); }
.dav2-stats-text { margin: 0; white-space: pre; overflow: auto; flex: 1 1 auto; }
`;
  document.head.appendChild(style);
}
