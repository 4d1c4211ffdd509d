// Interactive depth preview on Estimate Depth / Colorize Depth: the depth colourised in the browser with a
// colormap selector, hover read-out of the full-resolution value and pixel, a histogram strip, a 3D relief,
// and picking (click: Depth Bokeh focus, shift-click: Calibrate reference point; markers of both).
// The parts live in preview/ (dom, colouring, histogram, picking, pick_points); this class holds the state.
import { ensureMounted, existingPreviewFiles, forwardWheelToCanvas, growNode, loadPackedDepth } from "./dav2_common.js";
import { ReliefView } from "./depth_relief.js";
import { expandLut, fetchColormaps, levelLutIndex, paintDepth, sampleIndex } from "./preview/colouring.js";
import {
  CHROME_PX, MAX_VIEW_PX, MIN_VIEW_PX, MISSING_FILE_TEXT, axisTexts, buildPreviewDom, fillColormapOptions,
  fillImageOptions, showPlaceholder, statusText,
} from "./preview/dom.js";
import { clearHistogram, drawHistogram, histogram } from "./preview/histogram.js";
import { PICK_HINT, PickPoints } from "./preview/pick_points.js";
import { clearReadout, hoverReadout } from "./preview/picking.js";

export const PREVIEW_WIDGET = "dav2_depth_preview";
const RELIEF_HINT = "drag to turn the relief · double-click to face it";

/** The preview of one node: DOM, state and rendering. One instance per node, reused across executions. */
export class DepthPreview {
  constructor(node) {
    this.node = node;
    this.execution = 0; // number of outputs received (exposed as data-execution for tests)
    this.loadToken = 0; // bumped on every new load; a load that finishes after a newer one started is dropped
    this.entries = [];
    this.current = null; // {index, entry, depth, sample, hist, pw, ph, lutIndex} of the shown image
    this.luts = null;
    this.colormap = node.properties?.dav2_colormap ?? null;
    this.invert = false;
    this.relief = null; // ReliefView, created the first time 3D is switched on
    Object.assign(this, buildPreviewDom());
    this.root.style.minHeight = `${this.minHeight()}px`; // Nodes 2.0 lays the widget out by its CSS size
    this.picker = new PickPoints(this);

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

  /** New execution output (or a restored one): list of preview entries from nodes/preview.py. */
  async update(entries) {
    const token = ++this.loadToken;
    const execution = ++this.execution;
    this.entries = Array.isArray(entries) ? entries : [];
    this.current = null; // no hover on the previous execution's data while the new one loads
    this.clearHover();
    showPlaceholder(this, null);
    this.root.dataset.execution = String(this.execution);
    this.root.dataset.ready = "0";
    this.root.classList.add("dav2-loading"); // the old picture stays dimmed until the new one is there
    if (!this.entries.length) {
      this.fail(new Error("the node sent no depth to preview"));
      return;
    }
    fillImageOptions(this.imageSelect, this.entries);
    try {
      if (!this.luts) {
        this.luts = await fetchColormaps();
        if (token !== this.loadToken) return;
        fillColormapOptions(this.cmapSelect, [...this.luts.keys()]);
        if (!this.colormap || !this.luts.has(this.colormap)) this.colormap = this.luts.keys().next().value;
        this.cmapSelect.value = this.colormap;
      }
      this.applyNodeColormap();
      const present = await existingPreviewFiles(this.entries);
      if (token !== this.loadToken) return;
      if (!present.has(this.entries[0].filename)) return this.showMissing();
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
    this.clearPicture();
  }

  clearPicture() {
    this.current = null;
    this.canvas.getContext("2d").clearRect(0, 0, this.canvas.width, this.canvas.height);
    clearHistogram(this.hist);
    this.axisMin.textContent = "";
    this.axisMax.textContent = "";
    this.root.classList.remove("dav2-loading");
    this.picker.layout();
  }

  /** The preview's file is gone from the server's temp folder: a placeholder instead of the picture. */
  showMissing() {
    this.clearPicture();
    this.setStatus("preview data gone: run again", true);
    showPlaceholder(this, MISSING_FILE_TEXT);
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
      index, entry, depth, pw, ph,
      sample: sampleIndex(depth.width, depth.height, pw, ph),
      hist: histogram(depth),
      lutIndex: new Map(), // invert -> levelLutIndex, built when first needed
    };
    this.canvas.width = pw;
    this.canvas.height = ph;
    this.setStatus(statusText(entry, depth, pw, ph));
    [this.axisMin.textContent, this.axisMax.textContent] = axisTexts(entry);
    this.resizeNode();
    this.fitCanvas();
    this.render();
    this.updateRelief();
    this.picker.sync(true);
    if (this.reliefBox.checked) this.readout.textContent = RELIEF_HINT;
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

  lut() {
    return expandLut(this.colormap, this.luts.get(this.colormap));
  }

  render() {
    if (!this.current || !this.luts) return;
    const { depth, sample, pw, ph } = this.current;
    paintDepth(this.canvas, depth, sample, pw, ph, this.lut(), this.lutIndex());
    this.root.dataset.colormap = this.colormap;
    this.drawHistogram();
    if (this.relief && this.reliefBox.checked) this.relief.setColours(this.lut(), this.lutIndex());
  }

  drawHistogram(markerLevel = null) {
    if (!this.current || !this.luts) return;
    const { hist, entry } = this.current;
    drawHistogram(this.hist, hist, this.lut(), this.lutIndex(), entry.max === entry.min, markerLevel);
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
    this.clearHover();
    if (on) {
      this.readout.textContent = RELIEF_HINT;
      this.updateRelief();
    }
    this.fitCanvas();
  }

  updateRelief() {
    if (!this.relief || !this.reliefBox.checked || !this.current || !this.luts) return;
    const { depth, pw, ph, entry } = this.current;
    this.relief.setData(depth, pw, ph, this.lut(), this.lutIndex(), entry.larger_is_nearer);
  }

  /** Size the canvas element to fit the view box with the image's aspect ratio. */
  fitCanvas() {
    if (!this.current) return this.picker.layout();
    const { pw, ph } = this.current;
    const boxW = this.view.clientWidth;
    const boxH = this.view.clientHeight;
    if (!boxW || !boxH) return;
    if (this.relief && this.reliefBox.checked) this.relief.resize(boxW, boxH);
    const scale = Math.min(boxW / pw, boxH / ph);
    this.canvas.style.width = `${Math.max(1, Math.floor(pw * scale))}px`;
    this.canvas.style.height = `${Math.max(1, Math.floor(ph * scale))}px`;
    this.canvas.style.imageRendering = scale > 1 ? "pixelated" : "auto"; // enlarged: show the real pixels
    this.picker.layout();
    this.drawHistogram();
  }

  onHover(e) {
    if (!this.current) return;
    const level = hoverReadout(this.canvas, this.current, this.readout, e);
    if (level === undefined) this.clearHover();
    else this.drawHistogram(level);
  }

  clearHover() {
    clearReadout(this.readout, this.current ? `hover: depth · ${PICK_HINT}` : "");
    if (this.current) this.drawHistogram();
  }

  /** Grow the node so the preview gets a sensible size (never shrinks what the user made larger). */
  resizeNode() {
    const wanted = this.preferredHeight();
    growNode(this.node, 320, wanted - this.minHeight(), this.root, wanted);
  }

  dispose() {
    this.loadToken++;
    this.relief?.dispose();
    this.picker.dispose();
    this.resizeObserver.disconnect();
  }
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
    ensureMounted(node, preview.root);
  }
  node.dav2Preview.root.dataset.dav2Node = String(node.id);
  return node.dav2Preview.update(entries);
}
