// Drawing one box over the picture with mouse, pen or touch (pointer events), moving it by
// its body and resizing it by its corners, or with the keyboard (arrow keys move,
// Shift+arrow keys resize) and the X/Y/Width/Height fields. The box is kept in source
// pixels (EXIF orientation applied): the picture may be shown at any size.

import { clamp, normalise } from "./geometry.js";
import { field, h } from "./dom.js";

const CORNERS = ["nw", "ne", "sw", "se"];
// Drags shorter than this many CSS pixels are clicks, not boxes.
const MIN_DRAG = 3;

export class AreaEditor {
  /**
   * ``picture``: the <img> showing the whole image; ``size``: the image's ``{width,
   * height}`` in source pixels; ``onChange(box, final)`` is called while the box changes
   * (``final`` false) and when a gesture or edit ends (``final`` true).
   */
  constructor(picture, size, onChange) {
    this.size = size;
    this.onChange = onChange;
    this.box = null;
    this.drag = null;
    this.handles = CORNERS.map((corner) => h("span", { class: `handle ${corner}`, "data-handle": corner }));
    this.boxElement = h("div", {
      class: "box",
      tabindex: "0",
      role: "group",
      "aria-roledescription": "area",
      hidden: true,
      onkeydown: (event) => this.key(event),
    }, this.handles);
    this.outlines = h("div", { class: "outlines" });
    this.overlay = h("div", { class: "overlay" }, this.outlines, this.boxElement);
    this.stage = h("div", { class: "stage" }, picture, this.overlay);
    this.inputs = {};
    const fields = [["x", "X"], ["y", "Y"], ["width", "Width"], ["height", "Height"]].map(([key, label]) => {
      const input = h("input", { type: "number", min: key === "width" || key === "height" ? "1" : "0", step: "1", inputmode: "numeric" });
      input.addEventListener("change", () => this.typed());
      this.inputs[key] = input;
      return field(label, input);
    });
    this.fieldset = h("fieldset", { class: "coordinates" }, h("legend", {}, "Area in source pixels"), fields);
    this.overlay.addEventListener("pointerdown", (event) => this.down(event));
    this.overlay.addEventListener("pointermove", (event) => this.move(event));
    this.overlay.addEventListener("pointerup", (event) => this.up(event));
    this.overlay.addEventListener("pointercancel", (event) => this.up(event));
    this.label = "Area";
  }

  /** Show ``box`` (source pixels, or null for none) without calling onChange. */
  setBox(box) {
    this.box = box ? normalise(box, this.size) : null;
    this.paint();
  }

  /** Name the box for assistive technology ("Subject area", …). */
  setLabel(label) {
    this.label = label;
    this.paint();
  }

  /** Draw read-only outlines of other stored areas: ``[{label, box}]``. */
  setOutlines(list) {
    this.outlines.replaceChildren(
      ...list.map(({ label, box }) => {
        const outline = h("div", { class: "outline" }, h("span", {}, label));
        place(outline, normalise(box, this.size), this.size);
        return outline;
      }),
    );
  }

  paint() {
    const { box, boxElement } = this;
    boxElement.hidden = !box;
    for (const [key, input] of Object.entries(this.inputs)) input.value = box ? String(box[key]) : "";
    if (!box) return;
    place(boxElement, box, this.size);
    boxElement.setAttribute(
      "aria-label",
      `${this.label}: x ${box.x}, y ${box.y}, ${box.width} by ${box.height} pixels. ` +
        "Arrow keys move it, Shift with arrow keys resizes it.",
    );
  }

  /** The pointer's position in source pixels, clamped to the image. */
  point(event) {
    const rect = this.overlay.getBoundingClientRect();
    return {
      x: clamp(((event.clientX - rect.left) / rect.width) * this.size.width, 0, this.size.width),
      y: clamp(((event.clientY - rect.top) / rect.height) * this.size.height, 0, this.size.height),
      screenX: event.clientX,
      screenY: event.clientY,
    };
  }

  down(event) {
    if (event.pointerType === "mouse" && event.button !== 0) return;
    const start = this.point(event);
    const handle = event.target.dataset?.handle;
    let mode = "draw";
    if (this.box && handle) mode = "resize";
    else if (this.box && this.boxElement.contains(event.target)) mode = "move";
    this.drag = { mode, handle, start, original: this.box && { ...this.box }, moved: false };
    this.overlay.setPointerCapture(event.pointerId);
    event.preventDefault();
  }

  move(event) {
    const drag = this.drag;
    if (!drag) return;
    const p = this.point(event);
    if (!drag.moved && Math.hypot(p.screenX - drag.start.screenX, p.screenY - drag.start.screenY) < MIN_DRAG) return;
    drag.moved = true;
    const { width, height } = this.size;
    let box;
    if (drag.mode === "move") {
      const o = drag.original;
      box = {
        ...o,
        x: clamp(o.x + p.x - drag.start.x, 0, width - o.width),
        y: clamp(o.y + p.y - drag.start.y, 0, height - o.height),
      };
    } else if (drag.mode === "resize") {
      const o = drag.original;
      const fixedX = drag.handle.includes("w") ? o.x + o.width : o.x;
      const fixedY = drag.handle.includes("n") ? o.y + o.height : o.y;
      box = span(fixedX, fixedY, p.x, p.y);
    } else {
      box = span(drag.start.x, drag.start.y, p.x, p.y);
    }
    this.setBox(box);
    this.onChange(this.box, false);
  }

  up(event) {
    const drag = this.drag;
    if (!drag) return;
    this.drag = null;
    if (this.overlay.hasPointerCapture(event.pointerId)) this.overlay.releasePointerCapture(event.pointerId);
    if (!drag.moved) return;
    this.onChange(this.box, true);
    this.boxElement.focus({ preventScroll: true });
  }

  key(event) {
    const steps = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
    const step = steps[event.key];
    if (!step || !this.box) return;
    event.preventDefault();
    const { width, height } = this.size;
    // One percent of the image a press (at least a pixel); Alt for single pixels.
    const dx = step[0] * (event.altKey ? 1 : Math.max(1, Math.round(width / 100)));
    const dy = step[1] * (event.altKey ? 1 : Math.max(1, Math.round(height / 100)));
    const b = this.box;
    if (event.shiftKey) {
      this.setBox({ ...b, width: clamp(b.width + dx, 1, width - b.x), height: clamp(b.height + dy, 1, height - b.y) });
    } else {
      this.setBox({ ...b, x: clamp(b.x + dx, 0, width - b.width), y: clamp(b.y + dy, 0, height - b.height) });
    }
    this.onChange(this.box, true);
  }

  /** A value typed in X/Y/Width/Height: a new box once all four hold numbers. */
  typed() {
    const values = {};
    for (const [key, input] of Object.entries(this.inputs)) {
      const value = Number.parseInt(input.value, 10);
      if (Number.isFinite(value)) values[key] = value;
    }
    if (!this.box && Object.keys(values).length < 4) return;
    this.setBox({ ...this.box, ...values });
    this.onChange(this.box, true);
  }
}

/** The box spanned by two points. */
function span(x1, y1, x2, y2) {
  return { x: Math.min(x1, x2), y: Math.min(y1, y2), width: Math.abs(x2 - x1), height: Math.abs(y2 - y1) };
}

/** Position ``element`` over ``box`` in percent of the image (CSSOM, allowed by CSP). */
function place(element, box, size) {
  element.style.left = `${(box.x / size.width) * 100}%`;
  element.style.top = `${(box.y / size.height) * 100}%`;
  element.style.width = `${(box.width / size.width) * 100}%`;
  element.style.height = `${(box.height / size.height) * 100}%`;
}
