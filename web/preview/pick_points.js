// Picking on the depth preview: a click sets the focus point of the connected Depth Bokeh nodes, a shift-click
// adds a reference point (after typing its distance in metres) to the connected Calibrate Depth to Metric
// nodes; markers show the focus and reference points those nodes hold now (read back from their widgets, so a
// hand edit moves them). Which nodes are "connected": preview/targets.js. A click outside the picture, or on
// a preview with no depth yet, writes nothing.
import { el, fetchConfig } from "../dav2_common.js";
import { pixelAt } from "./picking.js";
import { parseMetres, pickTargets, readMarks, writeFocus, writePoint } from "./targets.js";

const SYNC_MS = 300; // how often the markers follow the connected widgets (hand edits, new links)
const NOTE_MS = 6000;
const CLICK_SLOP_PX = 5; // a press that moved farther is a drag, not a pick
export const PICK_HINT = "click: Bokeh focus · shift-click: Calibrate reference point";
export const NO_DATA_HINT = "nothing to pick on yet: run the graph to get a depth preview";
const NO_FOCUS_HINT = "click sets the focus of a Depth Bokeh fed by this depth: none is connected";
const NO_POINTS_HINT = "shift-click adds a reference point to a Calibrate Depth to Metric fed by this depth: none is connected";
export const BAD_METRES = "type the distance in metres, a number greater than 0 (e.g. 2.5)";

function markTitle(mark) {
  return mark.kind === "focus"
    ? `focus point of Depth Bokeh #${mark.node} (x ${mark.x}, y ${mark.y})`
    : `reference point of Calibrate #${mark.node}: x ${mark.x}, y ${mark.y} at ${mark.metres} m`;
}

function markElement(mark) {
  const m = el("div", `dav2-mark dav2-mark-${mark.kind}`);
  Object.assign(m.dataset, { kind: mark.kind, x: String(mark.x), y: String(mark.y), node: String(mark.node ?? "") });
  if (mark.metres !== undefined) {
    m.dataset.metres = String(mark.metres);
    m.append(el("span", "dav2-mark-label", `${mark.metres} m`));
  }
  m.title = mark.kind === "pending" ? "new reference point" : markTitle(mark);
  return m;
}

/** The picking layer of one DepthPreview (``preview``: its view, canvas, node and shown image). */
export class PickPoints {
  constructor(preview) {
    this.preview = preview;
    this.pick = null; // GET /dav2/config "pick": target node ids and widget names
    this.press = null;
    this.pending = null; // {x, y} waiting for its metres
    this.signature = "";
    this.layer = el("div", "dav2-marks"); // over the canvas, same box; markers at % of it
    this.note = el("div", "dav2-pick-note");
    this.form = this.buildForm();
    preview.view.append(this.layer, this.form, this.note);
    preview.view.addEventListener("pointerdown", (e) => this.onPointerDown(e));
    preview.view.addEventListener("pointerup", (e) => this.onPointerUp(e));
    fetchConfig()
      .then((config) => {
        this.pick = config.pick ?? null;
        this.sync(true);
      })
      .catch((err) => console.error("[dav2] depth preview: no pick settings from /dav2/config:", err));
    this.timer = setInterval(() => {
      try {
        this.sync();
      } catch (err) {
        clearInterval(this.timer); // one report, not one every SYNC_MS
        console.error("[dav2] depth preview: markers stopped following the connected nodes:", err);
      }
    }, SYNC_MS);
  }

  buildForm() {
    const form = el("form", "dav2-pick-form");
    form.dataset.open = "0";
    this.formLabel = el("span", "dav2-pick-label");
    this.input = el("input", "dav2-pick-metres");
    this.input.type = "text";
    this.input.inputMode = "decimal";
    this.input.placeholder = "metres";
    this.input.title = "Distance from the camera to this point, in metres; Enter adds it, Escape cancels";
    const add = el("button", "dav2-pick-add", "add");
    add.type = "submit";
    const cancel = el("button", "dav2-pick-cancel", "×");
    cancel.type = "button";
    cancel.title = "Cancel (Escape)";
    this.formError = el("span", "dav2-pick-error");
    form.append(this.formLabel, this.input, el("span", null, "m"), add, cancel, this.formError);
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.submitPoint();
    });
    cancel.addEventListener("click", () => this.closeForm());
    form.addEventListener("keydown", (e) => {
      e.stopPropagation(); // typing here is not a canvas shortcut
      if (e.key === "Escape") this.closeForm();
    });
    for (const type of ["pointerdown", "pointerup", "wheel"]) form.addEventListener(type, (e) => e.stopPropagation());
    return form;
  }

  /** Place the marker layer over the canvas (after the canvas was fitted or hidden). */
  layout() {
    const { canvas, current } = this.preview;
    const shown = !!current && canvas.style.display !== "none" && canvas.style.visibility !== "hidden";
    this.layer.style.display = shown ? "" : "none";
    if (!shown) return this.closeForm();
    Object.assign(this.layer.style, {
      left: `${canvas.offsetLeft}px`, top: `${canvas.offsetTop}px`,
      width: `${canvas.offsetWidth}px`, height: `${canvas.offsetHeight}px`,
    });
  }

  /** Redraw the markers when what the connected widgets hold (or the shown image) changed, or ``force``. */
  sync(force = false) {
    const current = this.preview.current;
    if (!this.preview.root.isConnected && !force) return;
    const { width, height } = current?.depth ?? { width: 0, height: 0 };
    const marks = current && this.pick ? readMarks(pickTargets(this.preview.node, this.pick), this.pick, width, height) : [];
    if (this.pending) marks.push({ kind: "pending", ...this.pending });
    const signature = JSON.stringify([width, height, marks]);
    if (signature === this.signature && !force) return;
    this.signature = signature;
    this.layer.replaceChildren(
      ...marks.map((mark) => {
        const m = markElement(mark);
        m.style.left = `${((mark.x + 0.5) / width) * 100}%`;
        m.style.top = `${((mark.y + 0.5) / height) * 100}%`;
        if (mark.x > 0.7 * width) m.classList.add("dav2-mark-flip");
        return m;
      })
    );
    this.layer.dataset.count = String(marks.length);
  }

  /** Show a short message over the picture (kind: "hint" | "done" | "error"); it fades after a while. */
  say(text, kind = "hint") {
    this.note.textContent = text;
    this.note.dataset.kind = kind;
    this.note.dataset.shown = "1";
    clearTimeout(this.noteTimer);
    this.noteTimer = setTimeout(() => {
      this.note.dataset.shown = "0";
    }, NOTE_MS);
  }

  onPointerDown(e) {
    this.press = null;
    if (e.button !== 0 || this.preview.reliefBox.checked) return;
    this.press = { x: e.clientX, y: e.clientY };
    if (this.preview.current) e.stopPropagation(); // a pick, not the start of a node drag (Nodes 2.0)
  }

  onPointerUp(e) {
    const press = this.press;
    this.press = null;
    if (!press || Math.hypot(e.clientX - press.x, e.clientY - press.y) > CLICK_SLOP_PX) return;
    const current = this.preview.current;
    if (!current) return this.say(NO_DATA_HINT);
    const p = pixelAt(this.preview.canvas, current.depth.width, current.depth.height, e);
    if (!p || !this.pick) return; // outside the picture: not a pick
    e.stopPropagation();
    const targets = pickTargets(this.preview.node, this.pick);
    if (e.shiftKey) {
      if (!targets.points.length) return this.say(NO_POINTS_HINT);
      return this.openForm(p);
    }
    if (!targets.focus.length) return this.say(NO_FOCUS_HINT);
    writeFocus(targets.focus, this.pick, p.x, p.y, current.depth.width, current.depth.height);
    this.say(`focus of ${targets.focus.map((n) => `#${n.id}`).join(", ")} set to x ${p.x}, y ${p.y}`, "done");
    this.sync(true);
  }

  openForm(p) {
    this.pending = p;
    this.formLabel.textContent = `x ${p.x}, y ${p.y}:`;
    this.formError.textContent = "";
    delete this.form.dataset.error;
    this.form.dataset.open = "1";
    this.input.value = "";
    this.sync(true);
    this.input.focus();
  }

  closeForm() {
    if (this.form.dataset.open !== "1") return;
    this.form.dataset.open = "0";
    this.pending = null;
    this.formError.textContent = "";
    this.sync(true);
  }

  /** The typed metres: refused with a message unless a positive number; else written to the Calibrate nodes. */
  submitPoint() {
    const p = this.pending;
    if (!p) return;
    const metres = parseMetres(this.input.value);
    if (metres === null) {
      this.formError.textContent = BAD_METRES;
      this.form.dataset.error = "1";
      this.input.focus();
      return;
    }
    delete this.form.dataset.error;
    const targets = pickTargets(this.preview.node, this.pick);
    this.closeForm();
    if (!targets.points.length) return this.say(NO_POINTS_HINT);
    writePoint(targets.points, this.pick, p.x, p.y, metres);
    this.say(`reference point x ${p.x}, y ${p.y} at ${metres} m added to ${targets.points.map((n) => `#${n.id}`).join(", ")}`, "done");
    this.sync(true);
  }

  dispose() {
    clearInterval(this.timer);
    clearTimeout(this.noteTimer);
  }
}
