// Interactive depth preview on Estimate Depth / Colorize Depth: the depth colourised in the browser with a
// colormap selector, hover read-out of the full-resolution value and pixel, and a histogram strip.
import { app } from "../../scripts/app.js";
import {
  Q_MAX,
  expandLut,
  fetchColormaps,
  forwardWheelToCanvas,
  injectStyle,
  levelToValue,
  loadPackedDepth,
  unitsSuffix,
  valueDecimals,
} from "./dav2_common.js";
import { ReliefView } from "./depth_relief.js";

export const PREVIEW_WIDGET = "dav2_depth_preview";
const HIST_BINS = 128;
const TOOLBAR_PX = 24;
const HIST_PX = 36 + 16; // strip + axis labels
const READOUT_PX = 16;
const MIN_VIEW_PX = 80;
const MAX_VIEW_PX = 420;
const CHROME_PX = TOOLBAR_PX + HIST_PX + READOUT_PX + 24; // everything but the image view, gaps included

function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

/** Index of the full-resolution pixel under each display pixel (nearest sample, pixel centres). */
function sampleIndex(width, height, pw, ph) {
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
 * Position on the expanded LUT (0..Q_MAX, see expandLut) of every stored 16-bit level of ``entry``, coloured
 * as Colorize Depth does: the entry's ``display_min``..``display_max`` (the node's range_mode, depth units)
 * or else its own ``min``..``max`` spans the colormap, clamped outside; near at the high end (metric: fewer
 * metres = nearer) unless ``invert``; a zero range gives the first colour. Uint16Array(Q_MAX + 1).
 */
export function levelLutIndex(entry, invert) {
  const index = new Uint16Array(Q_MAX + 1); // all zeros: the first colour
  const reverse = (entry.kind === "metric") !== invert; // metres: larger = farther
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

function histogram(depth) {
  const bins = new Float64Array(HIST_BINS);
  const { q, invalid } = depth;
  const shift = Math.log2((Q_MAX + 1) / HIST_BINS);
  for (let i = 0; i < q.length; i++) {
    if (invalid && invalid[i]) continue;
    bins[q[i] >> shift]++;
  }
  return bins;
}

/** The preview of one node: DOM, state and rendering. One instance per node, reused across executions. */
export class DepthPreview {
  constructor(node) {
    injectStyle();
    this.node = node;
    this.execution = 0; // number of outputs received (exposed as data-execution for tests)
    this.loadToken = 0; // bumped on every new load; a load that finishes after a newer one started is dropped
    this.entries = [];
    this.current = null; // {entry, depth, sample, hist, pw, ph} of the shown image
    this.luts = null;
    this.colormap = node.properties?.dav2_colormap ?? null;
    this.invert = false;

    this.root = el("div", "dav2-preview");
    this.root.dataset.dav2 = "depth-preview";
    const bar = el("div", "dav2-toolbar");
    this.cmapSelect = el("select", "dav2-colormap");
    this.cmapSelect.title = "Colormap of this preview (recolours in the browser; the graph is not re-run)";
    this.invertBox = el("input");
    this.invertBox.type = "checkbox";
    const invertLabel = el("label", "dav2-invert");
    invertLabel.title = "Swap the ends of the colormap (default: near = high end, like Colorize Depth)";
    invertLabel.append(this.invertBox, document.createTextNode("invert"));
    this.reliefBox = el("input");
    this.reliefBox.type = "checkbox";
    const reliefLabel = el("label", "dav2-relief-toggle");
    reliefLabel.title = "Show the depth as a 3D relief you can turn by dragging";
    reliefLabel.append(this.reliefBox, document.createTextNode("3D"));
    this.imageSelect = el("select", "dav2-image");
    this.imageSelect.title = "Image of the batch to show";
    this.imageSelect.style.display = "none";
    this.status = el("span", "dav2-status", "waiting for execution");
    bar.append(this.cmapSelect, invertLabel, reliefLabel, this.imageSelect, this.status);

    this.view = el("div", "dav2-view");
    this.canvas = el("canvas", "dav2-depth");
    this.canvas.width = 1;
    this.canvas.height = 1;
    this.relief = null; // ReliefView, created the first time 3D is switched on
    this.view.append(this.canvas);

    this.hist = el("canvas", "dav2-hist");
    const axis = el("div", "dav2-axis");
    this.axisMin = el("span", "dav2-axis-min", "");
    this.axisMax = el("span", "dav2-axis-max", "");
    axis.append(this.axisMin, this.axisMax);
    this.readout = el("div", "dav2-readout", "");
    this.root.append(bar, this.view, this.hist, axis, this.readout);

    this.cmapSelect.addEventListener("change", () => {
      this.colormap = this.cmapSelect.value;
      if (this.node.properties) this.node.properties.dav2_colormap = this.colormap;
      this.render();
    });
    this.invertBox.addEventListener("change", () => {
      this.invert = this.invertBox.checked;
      this.render();
    });
    this.reliefBox.addEventListener("change", () => this.setRelief(this.reliefBox.checked));
    this.imageSelect.addEventListener("change", () => {
      const token = this.loadToken + 1; // the token showImage is about to take
      this.showImage(Number(this.imageSelect.value)).catch((err) => {
        if (token === this.loadToken) this.fail(err);
      });
    });
    this.canvas.addEventListener("pointermove", (e) => this.onHover(e));
    this.canvas.addEventListener("pointerleave", () => this.clearHover());
    forwardWheelToCanvas(this.root);
    this.resizeObserver = new ResizeObserver(() => this.fitCanvas());
    this.resizeObserver.observe(this.view);
  }

  /** Smallest widget height: the controls plus a small view (the node cannot be shrunk below it). */
  minHeight() {
    return CHROME_PX + MIN_VIEW_PX;
  }

  /** Widget height that shows the image at the node's width with its aspect ratio (view capped). */
  preferredHeight() {
    const width = Math.max(100, (this.node.size?.[0] ?? 300) - 20);
    const aspect = this.current ? this.current.ph / this.current.pw : 0.75;
    return CHROME_PX + Math.max(MIN_VIEW_PX, Math.min(MAX_VIEW_PX, width * aspect));
  }

  setStatus(text, isError = false) {
    this.status.textContent = text;
    this.status.title = text;
    this.status.classList.toggle("dav2-error", isError);
  }

  /** New execution output: list of preview entries from nodes/preview.py. */
  async update(entries) {
    const token = ++this.loadToken;
    const execution = ++this.execution;
    this.entries = Array.isArray(entries) ? entries : [];
    this.current = null; // no hover on the previous execution's data while the new one loads
    this.clearHover();
    this.root.dataset.execution = String(this.execution);
    this.root.dataset.ready = "0";
    this.root.classList.add("dav2-loading"); // the old picture stays dimmed until the new one is there
    if (!this.entries.length) {
      this.fail(new Error("the node sent no depth to preview"));
      return;
    }
    this.imageSelect.replaceChildren(
      ...this.entries.map((e, i) => {
        const o = el("option", null, `image ${i + 1}/${e.batch ?? this.entries.length}`);
        o.value = String(i);
        return o;
      })
    );
    this.imageSelect.style.display = this.entries.length > 1 ? "" : "none";
    this.imageSelect.value = "0";
    try {
      if (!this.luts) {
        this.luts = await fetchColormaps();
        if (token !== this.loadToken) return;
        this.fillColormaps();
      }
      this.applyNodeColormap();
      await this.showImage(0);
    } catch (err) {
      if (execution !== this.execution) return; // failure of an output that was already replaced
      this.fail(err);
    }
  }

  /** A load failed: say why on the node and show no (stale) picture. */
  fail(err) {
    console.error("[dav2] depth preview:", err);
    this.setStatus(`preview failed: ${err.message ?? err}`, true);
    this.canvas.getContext("2d").clearRect(0, 0, this.canvas.width, this.canvas.height);
    this.hist.getContext("2d").clearRect(0, 0, this.hist.width, this.hist.height);
    this.axisMin.textContent = "";
    this.axisMax.textContent = "";
    this.root.classList.remove("dav2-loading");
  }

  fillColormaps() {
    this.cmapSelect.replaceChildren(
      ...[...this.luts.keys()].map((name) => {
        const o = el("option", null, name);
        o.value = name;
        return o;
      })
    );
    if (!this.colormap || !this.luts.has(this.colormap)) this.colormap = this.luts.keys().next().value;
    this.cmapSelect.value = this.colormap;
  }

  /** Colorize Depth: each execution starts from the node's own colormap/invert so the preview matches its output. */
  applyNodeColormap() {
    const widget = (name) => this.node.widgets?.find((w) => w.name === name);
    const cmap = widget("colormap")?.value;
    if (cmap && this.luts.has(cmap)) {
      this.colormap = cmap;
      this.cmapSelect.value = cmap;
    }
    const inv = widget("invert")?.value;
    if (typeof inv === "boolean") {
      this.invert = inv;
      this.invertBox.checked = inv;
    }
  }

  async showImage(index) {
    const entry = this.entries[index];
    if (!entry) return;
    const token = ++this.loadToken;
    this.current = null;
    this.clearHover();
    this.root.dataset.ready = "0";
    this.root.classList.add("dav2-loading");
    this.setStatus(`loading ${entry.width}x${entry.height}…`);
    const depth = await loadPackedDepth(entry);
    if (token !== this.loadToken) return; // a newer execution (or image choice) superseded this load
    const pw = Math.max(1, entry.preview_width ?? entry.width);
    const ph = Math.max(1, entry.preview_height ?? entry.height);
    this.current = {
      index,
      entry,
      depth,
      pw,
      ph,
      sample: sampleIndex(depth.width, depth.height, pw, ph),
      hist: histogram(depth),
      lutIndex: new Map(), // invert -> levelLutIndex, built when first needed
    };
    this.canvas.width = pw;
    this.canvas.height = ph;
    const dec = valueDecimals(entry);
    const units = entry.units === "m" ? " m" : "";
    this.axisMin.textContent = `${entry.min.toFixed(dec)}${units}`;
    this.axisMax.textContent = `${entry.max.toFixed(dec)}${units}`;
    const scaled = pw !== entry.width ? ` · shown at ${pw}x${ph}` : "";
    const flat = entry.max === entry.min ? " · constant depth" : "";
    const invalid = depth.invalidCount ? ` · ${depth.invalidCount} px without value` : "";
    const ranged = Number.isFinite(entry.display_min) && Number.isFinite(entry.display_max)
      && (entry.display_min !== entry.min || entry.display_max !== entry.max);
    const colours = ranged
      ? ` · colours ${entry.display_min.toFixed(dec)}–${entry.display_max.toFixed(dec)}${units}`
      : "";
    this.setStatus(`${entry.width}x${entry.height} ${entry.kind}${scaled}${flat}${invalid}${colours}`);
    this.resizeNode();
    this.fitCanvas();
    this.render();
    this.updateRelief();
    if (this.reliefBox.checked) this.readout.textContent = "drag to turn the relief · double-click to face it";
    else this.clearHover();
    this.root.classList.remove("dav2-loading");
    this.root.dataset.ready = "1";
  }

  /** Expanded-LUT position of each stored level of the shown image (levelLutIndex), cached per invert. */
  lutIndex() {
    const { entry, lutIndex } = this.current;
    let index = lutIndex.get(this.invert);
    if (!index) {
      index = levelLutIndex(entry, this.invert);
      lutIndex.set(this.invert, index);
    }
    return index;
  }

  render() {
    if (!this.current || !this.luts) return;
    const { depth, sample, pw, ph } = this.current;
    const lut = expandLut(this.colormap, this.luts.get(this.colormap));
    const index = this.lutIndex();
    const ctx = this.canvas.getContext("2d");
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
    this.root.dataset.colormap = this.colormap;
    this.drawHistogram();
    if (this.relief && this.reliefBox.checked) this.relief.setColours(lut, index);
  }

  /** Switch between the flat preview (hover read-out) and the 3D relief (drag to turn). */
  setRelief(on) {
    this.reliefBox.checked = on;
    this.root.dataset.relief = on ? "1" : "0";
    if (on && !this.relief) {
      this.relief = new ReliefView();
      this.view.append(this.relief.canvas);
    }
    this.canvas.style.display = on ? "none" : "";
    if (this.relief) this.relief.canvas.style.display = on ? "" : "none";
    if (on) {
      this.clearHover();
      this.readout.textContent = "drag to turn the relief · double-click to face it";
      this.updateRelief();
    } else {
      this.clearHover();
    }
    this.fitCanvas();
  }

  updateRelief() {
    if (!this.relief || !this.reliefBox.checked || !this.current || !this.luts) return;
    const { depth, pw, ph, entry } = this.current;
    const lut = expandLut(this.colormap, this.luts.get(this.colormap));
    this.relief.setData(depth, pw, ph, lut, this.lutIndex(), entry.kind === "metric");
  }

  drawHistogram(markerLevel = null) {
    if (!this.current) return;
    const cssW = Math.max(1, Math.round(this.hist.clientWidth || 200));
    const cssH = Math.max(1, Math.round(this.hist.clientHeight || 36));
    if (this.hist.width !== cssW) this.hist.width = cssW;
    if (this.hist.height !== cssH) this.hist.height = cssH;
    const ctx = this.hist.getContext("2d");
    ctx.clearRect(0, 0, cssW, cssH);
    const { hist } = this.current;
    const lut = expandLut(this.colormap, this.luts.get(this.colormap));
    const index = this.lutIndex();
    const flat = this.current.entry.max === this.current.entry.min;
    let peak = 0;
    for (const c of hist) peak = Math.max(peak, c);
    const binW = cssW / HIST_BINS;
    if (flat) {
      // Zero range: one spike; draw it in the middle, where the marker goes too.
      const l = index[0] * 3;
      ctx.fillStyle = `rgb(${lut[l]},${lut[l + 1]},${lut[l + 2]})`;
      ctx.fillRect(Math.floor(cssW / 2 - binW), 0, Math.max(2, 2 * binW), cssH);
      if (markerLevel !== null) {
        ctx.fillStyle = "#fff";
        ctx.fillRect(Math.floor(cssW / 2), 0, 1.5, cssH);
      }
      return;
    }
    for (let b = 0; b < HIST_BINS; b++) {
      if (!hist[b]) continue;
      const l = index[Math.round(((b + 0.5) / HIST_BINS) * Q_MAX)] * 3;
      ctx.fillStyle = `rgb(${lut[l]},${lut[l + 1]},${lut[l + 2]})`;
      const h = Math.max(1, Math.sqrt(hist[b] / peak) * (cssH - 2)); // sqrt scale keeps small bins visible
      ctx.fillRect(b * binW, cssH - h, Math.max(1, binW - 0.5), h);
    }
    if (markerLevel !== null) {
      const x = (markerLevel / Q_MAX) * cssW;
      ctx.fillStyle = "#fff";
      ctx.fillRect(Math.min(cssW - 1, Math.max(0, x - 0.5)), 0, 1.5, cssH);
    }
  }

  /** Size the canvas element to fit the view box with the image's aspect ratio. */
  fitCanvas() {
    if (!this.current) return;
    const { pw, ph } = this.current;
    const boxW = this.view.clientWidth;
    const boxH = this.view.clientHeight;
    if (!boxW || !boxH) return;
    if (this.relief && this.reliefBox.checked) this.relief.resize(boxW, boxH);
    const scale = Math.min(boxW / pw, boxH / ph);
    this.canvas.style.width = `${Math.max(1, Math.floor(pw * scale))}px`;
    this.canvas.style.height = `${Math.max(1, Math.floor(ph * scale))}px`;
    this.canvas.style.imageRendering = scale > 1 ? "pixelated" : "auto"; // enlarged: show the real pixels
    this.drawHistogram();
  }

  /** Full-resolution pixel under a pointer event, or null outside the image. */
  pixelAt(e) {
    if (!this.current) return null;
    const rect = this.canvas.getBoundingClientRect(); // includes the canvas zoom transform
    const u = (e.clientX - rect.left) / rect.width;
    const v = (e.clientY - rect.top) / rect.height;
    if (!(u >= 0 && u < 1 && v >= 0 && v < 1)) return null;
    const { width, height } = this.current.depth;
    return { x: Math.min(width - 1, Math.floor(u * width)), y: Math.min(height - 1, Math.floor(v * height)) };
  }

  onHover(e) {
    const p = this.pixelAt(e);
    if (!p) return this.clearHover();
    const { entry, depth } = this.current;
    const i = p.y * depth.width + p.x;
    const where = `x ${p.x}, y ${p.y}`;
    if (depth.invalid && depth.invalid[i]) {
      this.setReadout(where + " · no value (NaN/Inf)", p, null);
      this.drawHistogram();
      return;
    }
    const level = depth.q[i];
    const value = levelToValue(entry, level);
    const text = `${where} · ${value.toFixed(valueDecimals(entry))}${unitsSuffix(entry.units)}`;
    this.setReadout(text, p, value);
    this.drawHistogram(entry.max === entry.min ? 0 : level);
  }

  setReadout(text, p, value) {
    this.readout.textContent = text;
    const d = this.readout.dataset;
    d.x = String(p.x);
    d.y = String(p.y);
    d.value = value === null ? "" : String(value);
    d.units = this.current.entry.units;
  }

  clearHover() {
    this.readout.textContent = this.current ? "hover the image to read depth" : "";
    for (const k of ["x", "y", "value", "units"]) delete this.readout.dataset[k];
    if (this.current) this.drawHistogram();
  }

  /** Grow the node so the preview gets a sensible size (never shrinks what the user made larger). */
  resizeNode() {
    growNode(this.node, 320, this.preferredHeight() - this.minHeight());
  }

  dispose() {
    this.loadToken++;
    this.relief?.dispose();
    this.resizeObserver.disconnect();
  }
}

/**
 * Widen a node to ``minWidth`` and make it tall enough for its widgets' minimum heights plus ``extra`` px;
 * never shrinks it; redraws.
 */
export function growNode(node, minWidth, extra = 0) {
  if (!node.size || !node.computeSize) return;
  const width = Math.max(node.size[0], minWidth);
  node.setSize([width, node.size[1]]); // first the width: the preferred height depends on it
  const wanted = node.computeSize()[1] + Math.max(0, extra);
  node.setSize([width, Math.max(node.size[1], wanted)]);
  node.setDirtyCanvas?.(true, true);
  app.canvas?.setDirty(true, true);
}

/** Get (or create) the preview widget of a node and show new execution output in it. */
export function showDepthPreview(node, entries) {
  if (!node.dav2Preview) {
    const preview = new DepthPreview(node);
    const widget = node.addDOMWidget(PREVIEW_WIDGET, "dav2_preview", preview.root, {
      serialize: false,
      hideOnZoom: false,
      getMinHeight: () => preview.minHeight(),
    });
    widget.serialize = false;
    const onRemove = widget.onRemove;
    widget.onRemove = function () {
      preview.dispose();
      return onRemove?.apply(this, arguments);
    };
    node.dav2Preview = preview;
  }
  node.dav2Preview.root.dataset.nodeId = String(node.id);
  return node.dav2Preview.update(entries);
}
