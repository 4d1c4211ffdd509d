// Shared helpers of the Depth Anything V2 web extension: DOM building, node sizing, the pack's settings
// served by Python, the packed 16-bit depth PNG, number formatting.
// Data contract (nodes/preview.py): each preview entry names a PNG in ComfyUI's temp folder whose
// R = high byte and G = low byte of q = round(65535 * (d - min) / (max - min)); B = 255 marks "no value".
import { api } from "../../scripts/api.js";
import { app } from "../../scripts/app.js";

export const Q_MAX = 65535;

/** A new element with an optional class name and text. */
export function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

const GAP_PX = 10; // what a growing node keeps free towards its neighbours (canvas units)

function titleHeight() {
  return globalThis.LiteGraph?.NODE_TITLE_HEIGHT ?? 30;
}

/**
 * The largest width and body height (canvas units) ``node`` can take without running into a node to its
 * right or below it; Infinity where nothing is in the way.
 */
function roomAround(node) {
  const t = titleHeight();
  const [x0, y0] = node.pos;
  const [w, h] = node.size;
  let width = Infinity;
  let height = Infinity;
  for (const other of node.graph?.nodes ?? node.graph?._nodes ?? []) {
    if (other === node || other.flags?.collapsed) continue;
    const [ox, oy] = other.pos;
    const [ow, oh] = other.size;
    const besideX = ox < x0 + w && ox + ow > x0;
    const besideY = oy - t < y0 + h && oy + oh > y0 - t;
    if (besideX && oy - t >= y0) height = Math.min(height, oy - t - GAP_PX - y0);
    if (besideY && ox >= x0 + w) width = Math.min(width, ox - GAP_PX - x0);
  }
  return { width, height };
}

/**
 * Nodes 2.0 (a Vue node holding ``element``): the node's box follows its content (and some frontends do not
 * follow ``setSize`` once the node is shown), so after the layout has settled, give ``element`` the ``wanted``
 * height (CSS px = canvas units) it did not get, as far as the node body may grow (``limit``).
 */
function growVueNode(element, wanted, limit) {
  const nodeEl = element.closest?.(".lg-node");
  if (!nodeEl || !(wanted > 0)) return;
  requestAnimationFrame(() => requestAnimationFrame(() => {
    const have = element.clientHeight;
    const spare = Math.max(0, limit - (nodeEl.offsetHeight - titleHeight()));
    const target = Math.min(wanted, have + spare);
    if (target > have + 1) element.style.minHeight = `${Math.floor(target)}px`;
  }));
}

/**
 * Widen a node to ``minWidth`` and make it tall enough for its widgets' minimum heights plus ``extra`` px,
 * without running into its neighbours (it then stays smaller and the widget fits what there is); never
 * shrinks it; redraws. ``element``/``wanted``: our widget and the height it should get (Nodes 2.0 sizes
 * nodes by their content, so there the shortfall is measured).
 */
export function growNode(node, minWidth, extra = 0, element = null, wanted = 0) {
  if (!node.size || !node.computeSize) return;
  const room = roomAround(node);
  const width = Math.max(node.size[0], Math.min(minWidth, room.width));
  node.setSize([width, node.size[1]]); // first the width: the preferred height depends on it
  const least = node.computeSize()[1];
  const limit = Math.max(least, room.height);
  node.setSize([width, Math.max(node.size[1], Math.min(least + Math.max(0, extra), limit))]);
  if (element) growVueNode(element, wanted, limit);
  node.setDirtyCanvas?.(true, true);
  app.canvas?.setDirty(true, true);
}

/**
 * Nodes 2.0 on frontends that keep a snapshot of a node's widget list once any widget value changed (seen on
 * 1.32): a DOM widget added after that is never mounted. If the node shows its widgets but not ``element``,
 * announce the node to the graph again (``graph.onNodeAdded``, which the Vue node manager hooks), so its
 * widgets are read afresh. Frontends without the problem never get here.
 */
export function ensureMounted(node, element) {
  const vueNode = () => document.querySelector(`.lg-node[data-node-id="${node.id}"]`);
  if (!vueNode()) return; // classic canvas
  requestAnimationFrame(() => requestAnimationFrame(() => {
    const shown = vueNode();
    if (element.isConnected || !node.graph || !shown?.querySelector(".lg-node-widget")) return; // or far zoomed out
    node.graph.onNodeAdded?.(node);
  }));
}

/**
 * Make ``target[name]`` (a node type's ``onConfigure``, a widget's ``callback``, ...) also run ``extra`` with the
 * same ``this`` and arguments: after what was there, or ``before`` it; returns what was there returned. The one
 * way this extension hooks the frontend's callbacks, so other extensions' hooks keep running.
 */
export function chainCallback(target, name, extra, { before = false } = {}) {
  const previous = target[name];
  target[name] = function (...args) {
    if (before) extra.apply(this, args);
    const result = previous?.apply(this, args);
    if (!before) extra.apply(this, args);
    return result;
  };
}

/** Tell the frontend the workflow changed now (it saves it and records an undo step), not at the next click. */
export function workflowChanged() {
  app.extensionManager?.workflow?.activeWorkflow?.changeTracker?.checkState?.();
}

/** Add the pack's stylesheet (web/dav2.css) once per page, however often this module is loaded. */
export function ensureStylesheet() {
  if (document.getElementById("dav2-style")) return;
  const link = el("link");
  link.id = "dav2-style";
  link.rel = "stylesheet";
  link.href = new URL("./dav2.css", import.meta.url).href;
  document.head.appendChild(link);
}

const jsonCache = new Map();

/** GET a JSON route of the pack once per page (retried after a failure). */
export function fetchPackJson(route) {
  if (!jsonCache.has(route)) {
    const pending = api
      .fetchApi(route, { cache: "no-store" })
      .then(async (res) => {
        if (!res.ok) throw new Error(`GET ${route} failed: HTTP ${res.status}`);
        return res.json();
      })
      .catch((err) => {
        jsonCache.delete(route); // let a later call retry
        throw err;
      });
    jsonCache.set(route, pending);
  }
  return jsonCache.get(route);
}

/**
 * Constants the Python side owns (nodes/routes.py): ``stat_keys`` (the statistics rows, in display order)
 * and ``max_preview_images`` (how many images of a batch are previewed or get a stats column).
 */
export function fetchConfig() {
  return fetchPackJson("/dav2/config");
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
 * Which preview files of ``entries`` are still in the server's temp folder (ComfyUI empties it on start):
 * a Set of the file names that exist. Asked through GET /dav2/preview_files, so a missing file costs no
 * failed request (and no browser console error).
 */
export async function existingPreviewFiles(entries) {
  const names = entries.map((e) => e.filename).join("/");
  const res = await api.fetchApi(`/dav2/preview_files?${new URLSearchParams({ names })}`, { cache: "no-store" });
  if (!res.ok) throw new Error(`GET /dav2/preview_files failed: HTTP ${res.status}`);
  const found = await res.json();
  return new Set(Object.keys(found).filter((name) => found[name]));
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

/** Text after a value in ``units`` (as the Python side sends them: "m" or "relative"). */
export function unitsSuffix(units) {
  return units === "relative" ? " (relative)" : ` ${units}`;
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
