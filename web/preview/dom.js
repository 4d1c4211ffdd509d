// The DOM of the depth preview widget: toolbar (colormap, invert, 3D, image of the batch, status), the image
// view, the histogram strip with its axis, the hover read-out; plus the heights the node lays it out with.
import { el, unitsSuffix, valueDecimals } from "../dav2_common.js";

const TOOLBAR_PX = 24;
const HIST_PX = 36 + 16; // strip + axis labels
const READOUT_PX = 16;
export const MIN_VIEW_PX = 80;
export const MAX_VIEW_PX = 420;
/** Everything but the image view, gaps included. */
export const CHROME_PX = TOOLBAR_PX + HIST_PX + READOUT_PX + 24;
export const MISSING_FILE_TEXT =
  "The depth data of this preview is no longer on the server (ComfyUI empties its temp folder when it " +
  "restarts). Run the graph again to see it.";

function checkbox(className, label, title) {
  const box = el("input");
  box.type = "checkbox";
  const wrap = el("label", className);
  wrap.title = title;
  wrap.append(box, document.createTextNode(label));
  return { box, wrap };
}

/** The preview's elements, unattached: ``root`` holds them all (data-dav2="depth-preview"). */
export function buildPreviewDom() {
  const root = el("div", "dav2-preview");
  root.dataset.dav2 = "depth-preview";
  const bar = el("div", "dav2-toolbar");
  const cmapSelect = el("select", "dav2-colormap");
  cmapSelect.title = "Colormap of this preview (recolours in the browser; the graph is not re-run)";
  const invert = checkbox("dav2-invert", "invert",
    "Swap the ends of the colormap (default: near = high end, like Colorize Depth)");
  const relief = checkbox("dav2-relief-toggle", "3D", "Show the depth as a 3D relief you can turn by dragging");
  const imageSelect = el("select", "dav2-image");
  imageSelect.title = "Image of the batch to show";
  imageSelect.style.display = "none";
  const status = el("span", "dav2-status", "waiting for execution");
  bar.append(cmapSelect, invert.wrap, relief.wrap, imageSelect, status);

  const view = el("div", "dav2-view");
  const canvas = el("canvas", "dav2-depth");
  canvas.width = 1;
  canvas.height = 1;
  const placeholder = el("div", "dav2-placeholder");
  placeholder.style.display = "none";
  view.append(canvas, placeholder);

  const hist = el("canvas", "dav2-hist");
  const axis = el("div", "dav2-axis");
  const axisMin = el("span", "dav2-axis-min", "");
  const axisMax = el("span", "dav2-axis-max", "");
  axis.append(axisMin, axisMax);
  const readout = el("div", "dav2-readout", "");
  root.append(bar, view, hist, axis, readout);
  return {
    root, cmapSelect, invertBox: invert.box, reliefBox: relief.box, imageSelect, status,
    view, canvas, placeholder, hist, axisMin, axisMax, readout,
  };
}

/** Show ``text`` over the view instead of the picture (``parts`` from buildPreviewDom), or remove it (null). */
export function showPlaceholder(parts, text) {
  parts.placeholder.textContent = text ?? "";
  parts.placeholder.style.display = text ? "" : "none";
  parts.canvas.style.visibility = text ? "hidden" : "";
  if (text) parts.root.dataset.missing = "1";
  else delete parts.root.dataset.missing;
}

/** Fill the batch selector with one option per entry; shown only for more than one image. */
export function fillImageOptions(select, entries) {
  select.replaceChildren(
    ...entries.map((e, i) => {
      const o = el("option", null, `image ${i + 1}/${e.batch ?? entries.length}`);
      o.value = String(i);
      return o;
    })
  );
  select.style.display = entries.length > 1 ? "" : "none";
  select.value = "0";
}

/** Fill the colormap selector with the served colormap names. */
export function fillColormapOptions(select, names) {
  select.replaceChildren(
    ...names.map((name) => {
      const o = el("option", null, name);
      o.value = name;
      return o;
    })
  );
}

function unitsAfterNumber(entry) {
  return entry.units === "relative" ? "" : unitsSuffix(entry.units);
}

/** Status line of a shown image: size, kind, display scaling, constant maps, pixels without value, colour range. */
export function statusText(entry, depth, pw, ph) {
  const dec = valueDecimals(entry);
  const scaled = pw !== entry.width ? ` · shown at ${pw}x${ph}` : "";
  const flat = entry.max === entry.min ? " · constant depth" : "";
  const invalid = depth.invalidCount ? ` · ${depth.invalidCount} px without value` : "";
  const ranged = Number.isFinite(entry.display_min) && Number.isFinite(entry.display_max)
    && (entry.display_min !== entry.min || entry.display_max !== entry.max);
  const colours = ranged
    ? ` · colours ${entry.display_min.toFixed(dec)}–${entry.display_max.toFixed(dec)}${unitsAfterNumber(entry)}`
    : "";
  return `${entry.width}x${entry.height} ${entry.kind}${scaled}${flat}${invalid}${colours}`;
}

/** The labels at the ends of the histogram axis: [min, max] with their units. */
export function axisTexts(entry) {
  const dec = valueDecimals(entry);
  return [entry.min, entry.max].map((v) => `${v.toFixed(dec)}${unitsAfterNumber(entry)}`);
}
