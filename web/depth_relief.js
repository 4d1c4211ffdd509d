// A small 3D relief of the depth preview: the map as a shaded height field (near = raised), coloured with
// the preview's colormap, rotated by dragging. Plain canvas 2D (painter's algorithm over a coarse grid),
// so it works without WebGL.
import { Q_MAX } from "./dav2_common.js";

const GRID = 112; // quads along the long side
const MAX_YAW = 1.2; // radians
const MAX_PITCH = 1.2;

/**
 * Nearness 0..1 (near = 1) of a coarse grid over the full-resolution levels; NaN where no value.
 * ``largerIsNearer``: the direction of the values (the preview entry's ``larger_is_nearer``, from Python).
 */
function coarseGrid(depth, gw, gh, largerIsNearer) {
  const { width, height, q, invalid } = depth;
  const t = new Float32Array(gw * gh);
  for (let j = 0; j < gh; j++) {
    const y = Math.min(height - 1, Math.round((j / Math.max(1, gh - 1)) * (height - 1)));
    for (let i = 0; i < gw; i++) {
      const x = Math.min(width - 1, Math.round((i / Math.max(1, gw - 1)) * (width - 1)));
      const k = y * width + x;
      if (invalid && invalid[k]) {
        t[j * gw + i] = NaN;
        continue;
      }
      const v = q[k] / Q_MAX; // a constant map is all level 0
      t[j * gw + i] = largerIsNearer ? v : 1 - v;
    }
  }
  return t;
}

export class ReliefView {
  constructor() {
    this.canvas = document.createElement("canvas");
    this.canvas.className = "dav2-relief";
    this.canvas.title = "Drag to turn the relief; double-click to face it again";
    this.yaw = -0.45;
    this.pitch = 0.55;
    this.grid = null;
    this.frame = 0;
    let drag = null;
    this.canvas.addEventListener("pointerdown", (e) => {
      if (e.button !== 0) return;
      drag = { x: e.clientX, y: e.clientY, yaw: this.yaw, pitch: this.pitch };
      this.canvas.setPointerCapture(e.pointerId);
      this.canvas.style.cursor = "grabbing";
      e.stopPropagation(); // the drag turns the relief, it does not move the node
    });
    this.canvas.addEventListener("pointermove", (e) => {
      if (!drag) return;
      const scale = 1 / Math.max(60, this.canvas.clientWidth / 2);
      this.yaw = Math.max(-MAX_YAW, Math.min(MAX_YAW, drag.yaw + (e.clientX - drag.x) * scale));
      this.pitch = Math.max(-MAX_PITCH, Math.min(MAX_PITCH, drag.pitch + (e.clientY - drag.y) * scale));
      this.requestRender();
    });
    const end = (e) => {
      if (!drag) return;
      drag = null;
      this.canvas.style.cursor = "";
      if (this.canvas.hasPointerCapture(e.pointerId)) this.canvas.releasePointerCapture(e.pointerId);
    };
    this.canvas.addEventListener("pointerup", end);
    this.canvas.addEventListener("pointercancel", end);
    this.canvas.addEventListener("dblclick", () => {
      this.yaw = 0;
      this.pitch = 0;
      this.requestRender();
    });
  }

  /**
   * New data: ``depth`` from loadPackedDepth, its preview size, ``lut`` (Uint8Array 65536*3 RGB) and
   * ``index`` (expanded-LUT position of each stored level, as the flat preview colours it), and whether
   * larger values are nearer.
   */
  setData(depth, pw, ph, lut, index, largerIsNearer) {
    const gw = Math.max(2, Math.round(pw >= ph ? GRID : (GRID * pw) / ph));
    const gh = Math.max(2, Math.round(pw >= ph ? (GRID * ph) / pw : GRID));
    this.grid = { gw, gh, aspect: pw / ph, t: coarseGrid(depth, gw, gh, largerIsNearer) };
    this.lut = lut;
    this.index = index;
    this.largerIsNearer = largerIsNearer;
    this.requestRender();
  }

  /** Same data, other colours (colormap or invert changed). */
  setColours(lut, index) {
    this.lut = lut;
    this.index = index;
    this.requestRender();
  }

  resize(width, height) {
    const w = Math.max(1, Math.floor(width));
    const h = Math.max(1, Math.floor(height));
    this.canvas.style.width = `${w}px`;
    this.canvas.style.height = `${h}px`;
    if (this.canvas.width !== w || this.canvas.height !== h) {
      this.canvas.width = w;
      this.canvas.height = h;
    }
    this.requestRender();
  }

  requestRender() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.render();
    });
  }

  colour(t, shade) {
    // t: nearness 0..1 -> back to the stored level -> the colour the flat preview gives that level
    const l = this.index[Math.round((this.largerIsNearer ? t : 1 - t) * Q_MAX)] * 3;
    const r = Math.round(this.lut[l] * shade);
    const g = Math.round(this.lut[l + 1] * shade);
    const b = Math.round(this.lut[l + 2] * shade);
    return `rgb(${r},${g},${b})`;
  }

  render() {
    const ctx = this.canvas.getContext("2d");
    const W = this.canvas.width;
    const H = this.canvas.height;
    ctx.clearRect(0, 0, W, H);
    if (!this.grid || !this.lut) return;
    const { gw, gh, aspect, t } = this.grid;
    const sx = aspect >= 1 ? 1 : aspect;
    const sy = aspect >= 1 ? 1 / aspect : 1;
    const relief = 0.35;
    const cy = Math.cos(this.yaw), sny = Math.sin(this.yaw);
    const cp = Math.cos(this.pitch), snp = Math.sin(this.pitch);
    const n = gw * gh;
    const px = new Float32Array(n), py = new Float32Array(n), pz = new Float32Array(n);
    for (let j = 0; j < gh; j++) {
      for (let i = 0; i < gw; i++) {
        const k = j * gw + i;
        const X = (i / (gw - 1) - 0.5) * sx;
        const Y = (j / (gh - 1) - 0.5) * sy;
        const Z = (Number.isNaN(t[k]) ? 0 : t[k]) * relief; // towards the viewer
        const x1 = X * cy + Z * sny; // yaw around the vertical axis
        const z1 = -X * sny + Z * cy;
        const y2 = Y * cp - z1 * snp; // pitch around the horizontal axis
        const z2 = Y * snp + z1 * cp;
        px[k] = x1;
        py[k] = y2;
        pz[k] = z2;
      }
    }
    const scale = 0.75 * Math.min(W / sx, H / sy);
    const ox = W / 2, oy = H / 2;
    const quads = [];
    for (let j = 0; j < gh - 1; j++) {
      for (let i = 0; i < gw - 1; i++) {
        const a = j * gw + i, b = a + 1, c = a + gw + 1, d = a + gw;
        const ta = t[a], tb = t[b], tc = t[c], td = t[d];
        if (Number.isNaN(ta) || Number.isNaN(tb) || Number.isNaN(tc) || Number.isNaN(td)) continue;
        quads.push(a, pz[a] + pz[b] + pz[c] + pz[d]);
      }
    }
    const order = new Uint32Array(quads.length / 2).map((_, k) => k);
    order.sort((u, v) => quads[2 * u + 1] - quads[2 * v + 1]); // far (small z) first
    const light = [0.35, -0.45, 0.82];
    for (const k of order) {
      const a = quads[2 * k], b = a + 1, c = a + gw + 1, d = a + gw;
      // shading from the un-rotated surface normal (light fixed to the relief)
      const dzdx = (t[b] - t[a] + t[c] - t[d]) * 0.5 * relief * (gw - 1) / sx;
      const dzdy = (t[d] - t[a] + t[c] - t[b]) * 0.5 * relief * (gh - 1) / sy;
      const inv = 1 / Math.hypot(dzdx, dzdy, 1);
      const lambert = Math.max(0, (-dzdx * light[0] - dzdy * light[1] + light[2]) * inv);
      ctx.fillStyle = this.colour((t[a] + t[b] + t[c] + t[d]) / 4, 0.45 + 0.55 * lambert);
      ctx.beginPath();
      ctx.moveTo(ox + px[a] * scale, oy + py[a] * scale);
      ctx.lineTo(ox + px[b] * scale, oy + py[b] * scale);
      ctx.lineTo(ox + px[c] * scale, oy + py[c] * scale);
      ctx.lineTo(ox + px[d] * scale, oy + py[d] * scale);
      ctx.closePath();
      ctx.fill();
      ctx.strokeStyle = ctx.fillStyle; // hides hairline seams between neighbouring quads
      ctx.lineWidth = 0.6;
      ctx.stroke();
    }
  }

  dispose() {
    if (this.frame) cancelAnimationFrame(this.frame);
    this.frame = 0;
  }
}
