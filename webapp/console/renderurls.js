// Render URLs of this server for thumbnails, the picture being edited and the previews.
// Render URLs are public unless the image, the stack or (for dynamic renders) the
// organization is protected; those need a signature, which the API makes
// (POST /utils/{org}/sign_url) so the signing key never reaches the browser.

import { api, session } from "./api.js";

/** Thumbnail edge in CSS pixels times 2 for sharp thumbnails on dense screens. */
export const THUMB = 320;
/** Longest edge of the picture shown for drawing. */
export const STAGE = 1600;
/** Longest edge of a preview. */
export const PREVIEW = 360;

const signed = new Map();
let orgInfo = null;

/** Remember the organization's options (protect_dynamic_stack) for this session. */
export function setOrganization(info) {
  orgInfo = info;
}

function org() {
  return encodeURIComponent(session().org);
}

/** ``/{org}/dynamic/{operations}/{hash}.{ext}`` */
export function dynamicPath(operations, hash, ext = "jpg") {
  return `/${org()}/dynamic/${operations}/${hash}.${ext}`;
}

/** ``/{org}/{stack}/{hash}.{ext}`` */
export function stackPath(stack, hash, ext = "jpg") {
  return `/${org()}/${encodeURIComponent(stack)}/${hash}.${ext}`;
}

/**
 * The ``src`` for ``path``: the path itself when the render is public, else the path
 * with a signature from the API (remembered for the session).
 * ``needsSignature``: the image is protected, a stack is, or the organization protects
 * dynamic renders (``dynamic`` true for dynamic paths).
 */
export async function renderSrc(path, { image, dynamic = true, protectedStack = false } = {}) {
  const protectDynamic = Boolean(orgInfo?.options?.protect_dynamic_stack);
  const needsSignature = Boolean(image?.protected) || protectedStack || (dynamic && protectDynamic);
  if (!needsSignature) return path;
  if (!signed.has(path)) {
    const answer = await api("POST", `/utils/${org()}/sign_url`, { json: { url: path } });
    signed.set(path, answer.data.signed_url);
  }
  return signed.get(path);
}

/** Thumbnail of an image: fitted into a THUMB square. */
export function thumbPath(image) {
  return dynamicPath(`resize-width-${THUMB}-height-${THUMB}-upscale-false`, image.hash);
}

/** The picture to draw on: the whole image, oriented, at most STAGE pixels a side. */
export function stagePath(image) {
  return dynamicPath(`resize-width-${STAGE}-height-${STAGE}-upscale-false`, image.hash);
}

/**
 * A ratio preview of the stored areas: ``area`` names a named area (or null); ``anchor``
 * "croparea" previews the crop area even when a subject area is stored too.
 */
export function ratioPath(image, rw, rh, area, anchor = null) {
  const areaPart = (area ? `-area-${area}` : "") + (anchor ? `-anchor-${anchor}` : "");
  return dynamicPath(
    `crop-width-${rw}-height-${rh}-mode-ratio${areaPart}--resize-width-${PREVIEW}-height-${PREVIEW}`,
    image.hash,
  );
}

/** Largest anchor position a render URL accepts (px). */
const MAX_ANCHOR = 10000;

/**
 * A preview of an unsaved crop: exactly ``box`` (source pixels), cut by an absolute crop
 * placed by pixel anchor; null when the box lies beyond what an anchor can address.
 */
export function boxPath(image, box) {
  if (box.x > MAX_ANCHOR || box.y > MAX_ANCHOR) return null;
  return dynamicPath(
    `crop-width-${box.width}-height-${box.height}-anchor-${box.x}_${box.y}` +
      `--resize-width-${PREVIEW}-height-${PREVIEW}`,
    image.hash,
  );
}

/**
 * The dynamic-render form of a stack definition (operations list, options object), for a
 * live preview before it is saved; throws Error when a value cannot be written in a URL
 * (strings with "-" or "/", objects, expressions).
 */
export function definitionPath(operations, options) {
  const value = (v) => {
    if (typeof v === "boolean" || typeof v === "number") return String(v);
    if (typeof v === "string" && /^[A-Za-z0-9_.]+$/.test(v)) return v;
    throw new Error(`the value ${JSON.stringify(v)} cannot be written in a render URL`);
  };
  const pairs = (object) => Object.entries(object || {}).flatMap(([k, v]) => [k, value(v)]);
  const segments = operations.map((op) => {
    if (!op || typeof op.name !== "string" || !/^[a-z_]+$/.test(op.name)) {
      throw new Error("every operation needs a name");
    }
    if (op.expressions) throw new Error("expressions are only previewed once the stack is saved");
    return [op.name, ...pairs(op.options)].join("-");
  });
  if (options && Object.keys(options).length) segments.push(["options", ...pairs(options)].join("-"));
  return segments.length ? segments.join("--") : "noop";
}

// A busy server answers a render 503 with Retry-After (its render queue is full): the
// console tries again, a few times, a little later each time.
const RETRIES = 8;
const MAX_DELAY = 3000; // ms

/**
 * Follow the loading of render ``img``: a 503 is retried; any other failure puts the
 * render's error message (the API's JSON error) into ``target`` (if given); cleared on load.
 */
export function showRenderErrors(img, target = null) {
  let tries = 0;
  let failedSrc = "";
  const say = (text) => {
    if (target) target.textContent = text;
  };
  img.addEventListener("load", () => {
    tries = 0;
    say("");
    img.classList.remove("broken");
  });
  img.addEventListener("error", async () => {
    const src = img.getAttribute("src");
    if (!src) return;
    if (src !== failedSrc) tries = 0;
    failedSrc = src;
    let status = 0;
    let message = "";
    try {
      const response = await fetch(src, { credentials: "omit" });
      status = response.status;
      if (!response.ok) message = (await response.json())?.error?.message || "";
    } catch {
      // network error: retried like a 503
    }
    if (img.getAttribute("src") !== src) return; // replaced meanwhile
    if ((status === 503 || status === 0 || status === 200) && tries < RETRIES) {
      tries += 1;
      setTimeout(() => {
        if (img.getAttribute("src") !== src) return;
        img.removeAttribute("src");
        img.setAttribute("src", src);
      }, Math.min(500 * tries, MAX_DELAY) + Math.random() * 500);
      return;
    }
    img.classList.add("broken");
    say(message ? `Could not render: ${message}` : "Could not render.");
  });
}
