// One image: the picture to draw subject, crop and named areas on, live previews, and
// the image's metadata. Saving an area changes the image's dynamic metadata, so the API
// answers with the image under a new hash, which the view then shows.

import { api, ApiError, orgPath } from "./api.js";
import { AreaEditor } from "./areaeditor.js";
import { announce, field, h, replace } from "./dom.js";
import { cropFor } from "./geometry.js";
import {
  boxPath,
  ratioPath,
  renderSrc,
  showRenderErrors,
  stackPath,
  stagePath,
} from "./renderurls.js";

const RATIOS = [[1, 1], [16, 9], [9, 16]];
const AREA_NAME = /^[A-Za-z0-9_]{1,100}$/;
const KIND_LABEL = { subject_area: "subject area", crop_area: "crop area" };
// How often previews follow a box being dragged (ms): each update is a render.
const DRAFT_INTERVAL = 300;

// What the last save said and which area was being drawn, for the view of the new hash.
let carried = { message: "", mode: null };

/** A stored area in source pixels (percentages converted), or null. */
function pixels(area, size) {
  if (!area) return null;
  const box = { x: area.x, y: area.y, width: area.width ?? 1, height: area.height ?? 1 };
  if (!area.percentage) return box;
  return {
    x: (box.x / 100) * size.width,
    y: (box.y / 100) * size.height,
    width: (box.width / 100) * size.width,
    height: (box.height / 100) * size.height,
  };
}

function storedArea(image, mode) {
  const dm = image.dynamic_metadata || {};
  const area = mode.name ? dm.multi_areas?.[mode.name]?.[mode.kind] : dm[mode.kind];
  return pixels(area, image);
}

function modeLabel(mode) {
  const kind = KIND_LABEL[mode.kind];
  return mode.name ? `Named area ${mode.name} (${kind})` : kind[0].toUpperCase() + kind.slice(1);
}

function initialMode(image) {
  const dm = image.dynamic_metadata || {};
  if (dm.subject_area) return { kind: "subject_area", name: null };
  if (dm.crop_area) return { kind: "crop_area", name: null };
  const [name, entry] = Object.entries(dm.multi_areas || {})[0] || [];
  if (name) return { kind: entry.subject_area ? "subject_area" : "crop_area", name };
  return { kind: "subject_area", name: null };
}

export async function showDetail(main, hash) {
  const imagePath = `${orgPath("sourceimages")}/${encodeURIComponent(hash)}`;
  const { data: image } = await api("GET", imagePath);
  document.title = `${image.name} · cropstack console`;
  const size = { width: image.width, height: image.height };
  let mode = carried.mode || initialMode(image);
  const message = carried.message;
  carried = { message: "", mode: null };

  // -- the picture and the editor ---------------------------------------------------------
  const picture = h("img", { class: "picture", alt: image.name, width: image.width, height: image.height });
  showRenderErrors(picture);
  renderSrc(stagePath(image), { image }).then((src) => { picture.src = src; });
  const editor = new AreaEditor(picture, size, (box, final) => {
    saveButton.disabled = !box;
    previews.draft(box, final);
  });

  const modeButtons = {
    subject_area: h("button", { type: "button", "aria-pressed": "false" }, "Subject area"),
    crop_area: h("button", { type: "button", "aria-pressed": "false" }, "Crop area"),
  };
  const areaName = h("input", { type: "text", autocomplete: "off", spellcheck: "false", pattern: "[A-Za-z0-9_]+" });
  const areaKind = h(
    "select",
    {},
    h("option", { value: "subject_area" }, "subject area"),
    h("option", { value: "crop_area" }, "crop area"),
  );
  const namedButton = h("button", { type: "button", "aria-pressed": "false" }, "Named area");
  const modeStatus = h("p", { class: "mode", "aria-live": "polite" });
  const saveButton = h("button", { type: "button", class: "primary" }, "Save");
  const removeButton = h("button", { type: "button" }, "Remove");
  const deletePrevious = h("input", { type: "checkbox" });
  const saveStatus = h("p", { class: "status", role: "status" }, message);
  const saveError = h("p", { class: "error", role: "alert" });

  function selectMode(next) {
    mode = next;
    for (const [kind, button] of Object.entries(modeButtons)) {
      button.setAttribute("aria-pressed", String(!mode.name && mode.kind === kind));
    }
    namedButton.setAttribute("aria-pressed", String(Boolean(mode.name)));
    if (mode.name) {
      areaName.value = mode.name;
      areaKind.value = mode.kind;
    }
    const stored = storedArea(image, mode);
    editor.setLabel(modeLabel(mode));
    editor.setBox(stored);
    editor.setOutlines(otherAreas(image, mode));
    removeButton.disabled = !stored;
    saveButton.disabled = !stored;
    modeStatus.textContent = `Drawing: ${modeLabel(mode).toLowerCase()}` +
      (stored ? " (stored; drag to change it)." : " (none stored; drag on the picture to draw it).");
    previews.stored(mode);
  }

  areaName.addEventListener("keydown", (event) => {
    if (event.key === "Enter") namedButton.click();
  });
  modeButtons.subject_area.addEventListener("click", () => selectMode({ kind: "subject_area", name: null }));
  modeButtons.crop_area.addEventListener("click", () => selectMode({ kind: "crop_area", name: null }));
  namedButton.addEventListener("click", () => {
    const name = areaName.value.trim();
    saveError.textContent = "";
    if (!AREA_NAME.test(name)) {
      saveError.textContent = "Area name: use letters, digits and _ only.";
      areaName.focus();
      return;
    }
    selectMode({ kind: areaKind.value, name });
  });

  // -- previews ---------------------------------------------------------------------------
  const previews = new Previews(image, size);

  // -- saving -----------------------------------------------------------------------------
  async function change(request) {
    saveError.textContent = "";
    saveStatus.textContent = "Saving…";
    saveButton.disabled = true;
    removeButton.disabled = true;
    try {
      const answer = await request();
      if (answer.status === 204 || !answer.data) {
        saveStatus.textContent = "Nothing changed: the image already has this.";
        selectMode(mode);
        return;
      }
      const updated = answer.data;
      carried = { message: `Saved. The image's new hash is ${updated.hash}.`, mode };
      announce(carried.message);
      location.hash = `#/images/${updated.hash}`;
    } catch (exc) {
      saveStatus.textContent = "";
      saveError.textContent = exc instanceof ApiError ? `Not saved: ${exc.message}` : String(exc);
      saveButton.disabled = !editor.box;
      removeButton.disabled = !storedArea(image, mode);
    }
  }

  function query() {
    return deletePrevious.checked ? "deletePrevious=true" : "";
  }

  saveButton.addEventListener("click", () => {
    const box = editor.box;
    if (!box) return;
    change(() => {
      if (!mode.name) return api("PUT", `${imagePath}/meta/dynamic/${mode.kind}`, { json: box, query: query() });
      const areas = structuredClone(image.dynamic_metadata?.multi_areas || {});
      areas[mode.name] = { ...(areas[mode.name] || {}), [mode.kind]: box };
      return api("PUT", `${imagePath}/meta/dynamic/multi_areas`, { json: areas, query: query() });
    });
  });
  removeButton.addEventListener("click", () => {
    change(() => {
      if (!mode.name) return api("DELETE", `${imagePath}/meta/dynamic/${mode.kind}`, { query: query() });
      const areas = structuredClone(image.dynamic_metadata?.multi_areas || {});
      delete areas[mode.name]?.[mode.kind];
      if (areas[mode.name] && !Object.keys(areas[mode.name]).length) delete areas[mode.name];
      if (!Object.keys(areas).length) {
        return api("DELETE", `${imagePath}/meta/dynamic/multi_areas`, { query: query() });
      }
      return api("PUT", `${imagePath}/meta/dynamic/multi_areas`, { json: areas, query: query() });
    });
  });

  // -- metadata ---------------------------------------------------------------------------
  const userMeta = h("textarea", { rows: "6", spellcheck: "false" });
  userMeta.value = JSON.stringify(image.user_metadata || {}, null, 2);
  const userSave = h("button", { type: "button" }, "Save user metadata");
  const userStatus = h("p", { class: "status", role: "status" });
  userSave.addEventListener("click", async () => {
    userStatus.textContent = "";
    let value;
    try {
      value = JSON.parse(userMeta.value || "{}");
    } catch (exc) {
      userStatus.textContent = `Not saved: the text is not JSON (${exc.message}).`;
      return;
    }
    try {
      await api("PUT", `${imagePath}/meta/user`, { json: value });
      userStatus.textContent = "User metadata saved (the hash stays the same).";
    } catch (exc) {
      userStatus.textContent = `Not saved: ${exc.message}`;
    }
  });

  const facts = h(
    "dl",
    { class: "facts" },
    fact("Hash", h("code", { class: "hash" }, image.hash)),
    fact("Short hash", h("code", {}, image.short_hash)),
    fact("Size", `${image.width} × ${image.height} px (as displayed), ${image.size} bytes`),
    fact("Format", `${image.format} (${image.mimetype})`),
    fact("Created", image.created),
    fact("Protected", image.protected ? "yes (renders are signed)" : "no"),
    fact("Locked", image.locked ? "yes" : "no"),
  );

  replace(
    main,
    h("p", { class: "back" }, h("a", { href: "#/images" }, "← All images")),
    h("h1", { tabindex: "-1" }, image.name),
    facts,
    h(
      "div",
      { class: "detail-grid" },
      h(
        "section",
        { class: "editor", "aria-label": "Areas" },
        h("h2", {}, "Areas"),
        h(
          "div",
          { class: "toolbar", role: "group", "aria-label": "What to draw" },
          modeButtons.subject_area,
          modeButtons.crop_area,
          h("div", { class: "named" }, field("Area name", areaName), field("Named area type", areaKind), namedButton),
        ),
        modeStatus,
        editor.stage,
        editor.fieldset,
        h(
          "div",
          { class: "actions" },
          saveButton,
          removeButton,
          h("label", { class: "check" }, deletePrevious, " Delete the previous version"),
        ),
        saveStatus,
        saveError,
      ),
      previews.element,
    ),
    h(
      "section",
      { class: "metadata", "aria-label": "Metadata" },
      h("h2", {}, "Metadata"),
      h("h3", {}, "User metadata"),
      field("User metadata (JSON)", userMeta, "Typed fields as in the API: int:rating, date:taken, array:labels, …"),
      userSave,
      userStatus,
      h("h3", {}, "Dynamic metadata"),
      h("pre", { class: "json", tabindex: "0", "aria-label": "Dynamic metadata" }, JSON.stringify(image.dynamic_metadata || {}, null, 2)),
      h("h3", {}, "Static metadata"),
      h("pre", { class: "json", tabindex: "0", "aria-label": "Static metadata" }, JSON.stringify(image.static_metadata || {}, null, 2)),
    ),
  );
  selectMode(mode);
  await previews.loadStacks();
}

function fact(term, value) {
  return [h("dt", {}, term), h("dd", {}, value)];
}

/** Stored areas other than the one being drawn, as outlines. */
function otherAreas(image, mode) {
  const dm = image.dynamic_metadata || {};
  const list = [];
  for (const kind of ["subject_area", "crop_area"]) {
    if (dm[kind] && (mode.name || mode.kind !== kind)) list.push({ label: KIND_LABEL[kind], box: pixels(dm[kind], image) });
  }
  for (const [name, entry] of Object.entries(dm.multi_areas || {})) {
    for (const kind of ["subject_area", "crop_area"]) {
      if (entry[kind] && !(mode.name === name && mode.kind === kind)) {
        list.push({ label: `${name} (${KIND_LABEL[kind]})`, box: pixels(entry[kind], image) });
      }
    }
  }
  return list;
}

/**
 * Renders beside the picture: 1:1, 16:9 and 9:16 crops and one of the organization's
 * stacks. ``stored(mode)`` shows the real renders of the stored areas; ``draft(box)``
 * shows where the crops of an unsaved box fall.
 */
class Previews {
  constructor(image, size) {
    this.image = image;
    this.size = size;
    this.mode = null;
    this.pending = null;
    this.timer = null;
    this.lastDraft = 0;
    this.note = h("p", { class: "hint", "aria-live": "polite" });
    this.ratios = RATIOS.map(([rw, rh]) => {
      const img = h("img", { alt: `${rw}:${rh} preview`, "data-ratio": `${rw}:${rh}` });
      const error = h("span", { class: "error" });
      showRenderErrors(img, error);
      return { rw, rh, img, figure: h("figure", {}, img, h("figcaption", {}, `${rw}:${rh} `, error)) };
    });
    this.stackSelect = h("select", {}, h("option", { value: "" }, "(none)"));
    this.stackImg = h("img", { alt: "Stack preview", hidden: true });
    this.stackError = h("span", { class: "error" });
    showRenderErrors(this.stackImg, this.stackError);
    this.stackSelect.addEventListener("change", () => this.showStack());
    this.stacks = new Map();
    this.element = h(
      "section",
      { class: "previews", "aria-label": "Previews" },
      h("h2", {}, "Previews"),
      this.note,
      h("div", { class: "preview-grid" }, this.ratios.map((r) => r.figure)),
      field("Stack preview", this.stackSelect),
      h("figure", { class: "stack-preview" }, this.stackImg, h("figcaption", {}, this.stackError)),
    );
  }

  async loadStacks() {
    try {
      const { data } = await api("GET", orgPath("stacks"));
      for (const stack of data.items) {
        this.stacks.set(stack.name, stack);
        this.stackSelect.append(h("option", { value: stack.name }, stack.name));
      }
    } catch {
      this.stackSelect.disabled = true; // a key that may not read stacks
    }
  }

  async showStack() {
    const name = this.stackSelect.value;
    this.stackImg.hidden = !name;
    this.stackError.textContent = "";
    if (!name) return;
    this.stackImg.alt = `Stack ${name} preview`;
    const isProtected = this.stacks.get(name)?.stack_options?.protected === true;
    this.stackImg.src = await renderSrc(stackPath(name, this.image.hash), {
      image: this.image,
      dynamic: false,
      protectedStack: isProtected,
    });
  }

  /** Real renders of the stored areas for ``mode`` (a named area renders with area-NAME). */
  async stored(mode) {
    this.mode = mode;
    clearTimeout(this.timer);
    this.pending = null;
    this.note.textContent = "Renders of the stored areas.";
    for (const r of this.ratios) {
      r.img.src = await renderSrc(ratioPath(this.image, r.rw, r.rh, mode.name, mode.kind === "crop_area" ? "croparea" : null), { image: this.image });
    }
    await this.showStack();
  }

  /** Where the crops of the unsaved ``box`` fall (throttled: each update renders). */
  draft(box, final) {
    if (!box) return;
    this.pending = box;
    const wait = final ? 0 : Math.max(0, this.lastDraft + DRAFT_INTERVAL - Date.now());
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.showDraft(), wait);
  }

  async showDraft() {
    const box = this.pending;
    if (!box) return;
    this.lastDraft = Date.now();
    this.note.textContent = "Where the crops of the unsaved area fall; Save to store it. The stack preview changes after Save.";
    for (const r of this.ratios) {
      const crop = cropFor(this.size, r.rw, r.rh, this.mode.kind, box);
      const path = boxPath(this.image, crop);
      if (path) r.img.src = await renderSrc(path, { image: this.image });
    }
  }
}
