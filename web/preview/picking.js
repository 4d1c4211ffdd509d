// Hover read-out of the depth preview: which full-resolution pixel is under the pointer and what it says.
import { levelToValue, unitsSuffix, valueDecimals } from "../dav2_common.js";

/**
 * Full-resolution pixel {x, y} of a ``width`` x ``height`` map under a pointer event on ``canvas`` (the
 * canvas's on-screen box, zoom transforms included), or null outside the image.
 */
export function pixelAt(canvas, width, height, e) {
  const rect = canvas.getBoundingClientRect();
  const u = (e.clientX - rect.left) / rect.width;
  const v = (e.clientY - rect.top) / rect.height;
  if (!(u >= 0 && u < 1 && v >= 0 && v < 1)) return null;
  return { x: Math.min(width - 1, Math.floor(u * width)), y: Math.min(height - 1, Math.floor(v * height)) };
}

/**
 * What the read-out says at pixel ``p`` of ``depth`` (from loadPackedDepth) described by ``entry``:
 * {text, value (depth units, null where no value), level (16-bit, null where no value)}.
 */
export function readPixel(entry, depth, p) {
  const i = p.y * depth.width + p.x;
  const where = `x ${p.x}, y ${p.y}`;
  if (depth.invalid && depth.invalid[i]) return { text: `${where} · no value (NaN/Inf)`, value: null, level: null };
  const level = depth.q[i];
  const value = levelToValue(entry, level);
  return { text: `${where} · ${value.toFixed(valueDecimals(entry))}${unitsSuffix(entry.units)}`, value, level };
}

/** Show a read-out in ``readout`` and mirror it in its data attributes (x, y, value, units) for tests. */
export function setReadout(readout, text, p, value, units) {
  readout.textContent = text;
  const d = readout.dataset;
  d.x = String(p.x);
  d.y = String(p.y);
  d.value = value === null ? "" : String(value);
  d.units = units;
}

/** Empty the read-out's data attributes (and show ``text``). */
export function clearReadout(readout, text) {
  readout.textContent = text;
  for (const k of ["x", "y", "value", "units"]) delete readout.dataset[k];
}

/**
 * Hover read-out at pointer event ``e`` over ``canvas`` showing ``current`` ({entry, depth}): fills ``readout``
 * and returns the histogram marker level (null: none), or undefined (read-out untouched) outside the image.
 */
export function hoverReadout(canvas, current, readout, e) {
  const { entry, depth } = current;
  const p = pixelAt(canvas, depth.width, depth.height, e);
  if (!p) return undefined;
  const read = readPixel(entry, depth, p);
  setReadout(readout, read.text, p, read.value, entry.units);
  return read.level === null ? null : entry.max === entry.min ? 0 : read.level;
}
