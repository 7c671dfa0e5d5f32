// The gallery: the organization's images as thumbnails rendered by this server, search
// (a name, or the API's field=value syntax), paging by cursor, and uploads by file input
// or drag and drop, with progress.

import { api, ApiError, orgPath, uploadFile } from "./api.js";
import { announce, field, h, replace } from "./dom.js";
import { renderSrc, showRenderErrors, thumbPath } from "./renderurls.js";

const PAGE = 48;

// Kept across visits of the gallery within this tab, so "back" returns to the same page.
const state = { search: "", offsets: [""] };

/**
 * Query parameters for what was typed in the search box: ``field=value`` pairs joined by
 * ``&`` are passed to the API as they are (docs/search.md); anything else searches the
 * words of image names, the last word as a prefix.
 */
export function searchParams(text) {
  const params = new URLSearchParams();
  const typed = text.trim();
  if (!typed) return params;
  if (!typed.includes("=")) {
    params.append("name_text", typed.endsWith("*") ? typed : `${typed}*`);
    return params;
  }
  for (const part of typed.split("&")) {
    if (!part.trim()) continue;
    const at = part.indexOf("=");
    if (at < 1) throw new Error(`"${part.trim()}" is not field=value`);
    params.append(part.slice(0, at).trim(), part.slice(at + 1).trim());
  }
  return params;
}

export async function showGallery(main) {
  document.title = "Images · cropstack console";
  const searchBox = h("input", {
    type: "search",
    value: state.search,
    autocomplete: "off",
    spellcheck: "false",
  });
  const searchError = h("p", { class: "error", role: "alert" });
  const searchForm = h(
    "form",
    { role: "search", class: "search" },
    field("Search", searchBox, "Words of a name, or the API's syntax: name=beach*&user:int:rating=[3,5]&sort=size desc"),
    h("button", { type: "submit" }, "Search"),
  );
  const uploadInput = h("input", { type: "file", multiple: true, accept: "image/*" });
  const uploads = h("ul", { class: "uploads", "aria-label": "Upload progress" });
  const count = h("p", { class: "count", "aria-live": "polite" });
  const grid = h("ul", { class: "gallery", "aria-label": "Images" });
  const previous = h("button", { type: "button" }, "Previous page");
  const next = h("button", { type: "button" }, "Next page");
  const drop = h(
    "section",
    { class: "dropzone", "aria-label": "Gallery" },
    h("div", { class: "upload" }, field("Upload", uploadInput, "Or drop image files anywhere on the gallery.")),
    uploads,
    count,
    grid,
    h("nav", { class: "pager", "aria-label": "Pages" }, previous, next),
  );
  replace(main, h("h1", { tabindex: "-1" }, "Images"), searchForm, searchError, drop);

  async function load() {
    searchError.textContent = "";
    let params;
    try {
      params = searchParams(state.search);
    } catch (exc) {
      searchError.textContent = `Search: ${exc.message}`;
      return;
    }
    const offset = state.offsets[state.offsets.length - 1];
    params.set("limit", String(PAGE));
    if (offset) params.set("offset", offset);
    let answer;
    try {
      answer = await api("GET", orgPath("sourceimages"), { query: params.toString() });
    } catch (exc) {
      if (exc instanceof ApiError && exc.status === 400) {
        searchError.textContent = `Search: ${exc.message}`;
        replace(grid);
        count.textContent = "";
        return;
      }
      throw exc;
    }
    const { items, total, links, cursor } = answer.data;
    const first = (state.offsets.length - 1) * PAGE;
    count.textContent = total
      ? `Images ${first + 1}–${first + items.length} of ${total}`
      : "No images found.";
    replace(grid, items.map(thumbnail));
    previous.disabled = state.offsets.length < 2;
    next.disabled = !links.next;
    next.onclick = () => {
      state.offsets.push(cursor);
      load();
    };
  }

  function thumbnail(image) {
    const img = h("img", {
      alt: image.name,
      width: image.width >= image.height ? 160 : Math.max(1, Math.round((160 * image.width) / image.height)),
      height: image.height >= image.width ? 160 : Math.max(1, Math.round((160 * image.height) / image.width)),
      loading: "lazy",
      decoding: "async",
    });
    showRenderErrors(img);
    renderSrc(thumbPath(image), { image }).then((src) => { img.src = src; }, () => { img.classList.add("broken"); });
    return h(
      "li",
      {},
      h("a", { href: `#/images/${image.hash}` }, h("span", { class: "thumb" }, img)),
      h("span", { class: "caption", "aria-hidden": "true" }, image.name),
    );
  }

  previous.addEventListener("click", () => {
    if (state.offsets.length > 1) state.offsets.pop();
    load();
  });
  searchForm.addEventListener("submit", (event) => {
    event.preventDefault();
    state.search = searchBox.value;
    state.offsets = [""];
    load();
  });

  async function uploadAll(files) {
    const list = [...files];
    if (!list.length) return;
    let done = 0;
    for (const file of list) {
      const bar = h("progress", { max: "1", value: "0" });
      const status = h("span", { class: "status" }, "waiting");
      const label = h("span", { class: "name" }, file.name);
      const item = h("li", {}, label, bar, status);
      bar.setAttribute("aria-label", `Upload of ${file.name}`);
      uploads.append(item);
      try {
        status.textContent = "uploading";
        await uploadFile(file, (fraction) => { bar.value = fraction; });
        status.textContent = "uploaded";
        item.classList.add("done");
        done += 1;
      } catch (exc) {
        status.textContent = `failed: ${exc.message}`;
        item.classList.add("failed");
      }
    }
    announce(`${done} of ${list.length} uploaded`);
    // Newest first: the first page shows what was just uploaded.
    state.offsets = [""];
    await load();
  }

  uploadInput.addEventListener("change", async () => {
    await uploadAll(uploadInput.files);
    uploadInput.value = "";
  });
  drop.addEventListener("dragover", (event) => {
    if (![...event.dataTransfer.types].includes("Files")) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
    drop.classList.add("dragging");
  });
  drop.addEventListener("dragleave", (event) => {
    if (!drop.contains(event.relatedTarget)) drop.classList.remove("dragging");
  });
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("dragging");
    uploadAll(event.dataTransfer.files);
  });

  await load();
}
