// Where a crop falls, computed in the browser while an area is drawn, the way the engine
// computes it when it renders (engine/geometry.py, crop_box). All values are pixels of the
// source image as displayed (EXIF orientation applied), the grid areas are stored on.

export function clamp(value, low, high) {
  return Math.max(low, Math.min(value, high));
}

/** The largest box of ratio ``rw:rh`` inside an image of ``width`` x ``height``. */
export function largestRatioBox(width, height, rw, rh) {
  const ratio = rw / rh;
  if (width / height > ratio) return [height * ratio, height];
  return [width, width / ratio];
}

/**
 * The whole-pixel box ``{x, y, width, height}`` a ``crop`` in ratio mode cuts from an
 * image of ``size`` ``{width, height}`` for an area of ``kind`` ("subject_area" or
 * "crop_area"): a subject area centres the largest box of the ratio on itself (clamped
 * inside the image); a crop area is cut exactly (clipped to the image).
 */
export function cropFor(size, rw, rh, kind, area) {
  if (kind === "crop_area") {
    const x = clamp(Math.round(area.x), 0, size.width - 1);
    const y = clamp(Math.round(area.y), 0, size.height - 1);
    return {
      x,
      y,
      width: clamp(Math.round(area.width), 1, size.width - x),
      height: clamp(Math.round(area.height), 1, size.height - y),
    };
  }
  let [w, h] = largestRatioBox(size.width, size.height, rw, rh);
  w = clamp(Math.round(w), 1, size.width);
  h = clamp(Math.round(h), 1, size.height);
  const cx = area.x + area.width / 2;
  const cy = area.y + area.height / 2;
  return {
    x: clamp(Math.round(cx - w / 2), 0, size.width - w),
    y: clamp(Math.round(cy - h / 2), 0, size.height - h),
    width: w,
    height: h,
  };
}

/** ``box`` with whole, non-negative pixel values of at least 1 x 1, inside ``size``. */
export function normalise(box, size) {
  const x = clamp(Math.round(box.x), 0, size.width - 1);
  const y = clamp(Math.round(box.y), 0, size.height - 1);
  return {
    x,
    y,
    width: clamp(Math.round(box.width), 1, size.width - x),
    height: clamp(Math.round(box.height), 1, size.height - y),
  };
}
