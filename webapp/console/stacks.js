// Stacks: the organization's list, one stack with a preview on a chosen image, and a form
// that creates a stack while previewing it live (as a dynamic render of the same
// operations) on a chosen image.

import { api, ApiError, orgPath } from "./api.js";
import { field, h, replace } from "./dom.js";
import { definitionPath, dynamicPath, renderSrc, showRenderErrors, stackPath } from "./renderurls.js";

const STACK_NAME = /^[A-Za-z0-9_-]{1,100}$/;
const PREVIEW_DELAY = 400;
const TEMPLATE = [{ name: "resize", options: { width: 600, height: 400, mode: "fill" } }, { name: "crop", options: { width: 600, height: 400 } }];

export async function showStacks(main) {
  document.title = "Stacks · cropstack console";
  const { data } = await api("GET", orgPath("stacks"));
  const list = data.items.length
    ? h("ul", { class: "stack-list" }, data.items.map((stack) => h(
      "li",
      {},
      h("a", { href: `#/stacks/${encodeURIComponent(stack.name)}` }, stack.name),
      h("span", { class: "hint" }, ` ${stack.stack_operations.map((op) => op.name).join(", ") || "no operations"}`),
    )))
    : h("p", {}, "No stacks yet.");
  replace(
    main,
    h("h1", { tabindex: "-1" }, "Stacks"),
    h("p", {}, h("a", { href: "#/stacks/new", class: "button" }, "New stack")),
    list,
  );
}

/** A select of recent images to preview on: ``{element, select}``. */
async function imageChooser(onChange) {
  const { data } = await api("GET", orgPath("sourceimages"), { query: "limit=100" });
  const select = h("select", {}, data.items.map((image) => h("option", { value: image.hash }, image.name)));
  const images = new Map(data.items.map((image) => [image.hash, image]));
  select.addEventListener("change", onChange);
  return { element: field("Preview image", select), current: () => images.get(select.value) };
}

export async function showStack(main, name) {
  const { data: stack } = await api("GET", `${orgPath("stacks")}/${encodeURIComponent(name)}`);
  document.title = `Stack ${stack.name} · cropstack console`;
  const img = h("img", { alt: `Stack ${stack.name} preview` });
  const error = h("p", { class: "error" });
  showRenderErrors(img, error);
  const chooser = await imageChooser(() => preview());
  async function preview() {
    const image = chooser.current();
    if (!image) return;
    img.src = await renderSrc(stackPath(stack.name, image.hash), {
      image,
      dynamic: false,
      protectedStack: stack.stack_options?.protected === true,
    });
  }
  const definition = {
    operations: stack.stack_operations,
    options: stack.stack_options,
    expressions: stack.stack_expressions,
    variables: stack.stack_variables,
  };
  replace(
    main,
    h("p", { class: "back" }, h("a", { href: "#/stacks" }, "← All stacks")),
    h("h1", { tabindex: "-1" }, `Stack ${stack.name}`),
    h("p", {}, `Created ${stack.created}. Render URL: `, h("code", {}, `/${stack.organization}/${stack.name}/{hash}.jpg`)),
    h("div", { class: "detail-grid" },
      h("section", { "aria-label": "Definition" }, h("h2", {}, "Definition"),
        h("pre", { class: "json", tabindex: "0", "aria-label": "Stack definition" }, JSON.stringify(definition, null, 2))),
      h("section", { "aria-label": "Preview" }, h("h2", {}, "Preview"), chooser.element, h("figure", {}, img), error)),
  );
  await preview();
}

export async function showStackForm(main) {
  document.title = "New stack · cropstack console";
  const nameInput = h("input", { type: "text", autocomplete: "off", spellcheck: "false", pattern: "[A-Za-z0-9_\\-]+" });
  const operations = h("textarea", { rows: "10", spellcheck: "false" });
  operations.value = JSON.stringify(TEMPLATE, null, 2);
  const options = h("textarea", { rows: "3", spellcheck: "false" });
  options.value = "{}";
  const img = h("img", { alt: "Live preview of the new stack" });
  const previewError = h("p", { class: "error", "aria-live": "polite" });
  showRenderErrors(img, previewError);
  const error = h("p", { class: "error", role: "alert" });
  const create = h("button", { type: "submit", class: "primary" }, "Create stack");
  const chooser = await imageChooser(() => schedule());
  let timer = null;

  function parsed() {
    const ops = JSON.parse(operations.value || "[]");
    const opts = JSON.parse(options.value || "{}");
    if (!Array.isArray(ops)) throw new Error("Operations must be a JSON array");
    if (opts === null || typeof opts !== "object" || Array.isArray(opts)) throw new Error("Stack options must be a JSON object");
    return { ops, opts };
  }

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(preview, PREVIEW_DELAY);
  }

  async function preview() {
    const image = chooser.current();
    previewError.textContent = "";
    if (!image) {
      previewError.textContent = "Upload an image to preview stacks on.";
      return;
    }
    try {
      const { ops, opts } = parsed();
      img.src = await renderSrc(dynamicPath(definitionPath(ops, opts), image.hash), { image });
    } catch (exc) {
      previewError.textContent = `No preview: ${exc.message}`;
    }
  }

  operations.addEventListener("input", schedule);
  options.addEventListener("input", schedule);
  const form = h(
    "form",
    { class: "stack-form" },
    field("Stack name", nameInput, "Letters, digits, _ and -; used in render URLs."),
    field("Operations (JSON)", operations, "A list of {\"name\": …, \"options\": {…}} as in the stacks API."),
    field("Stack options (JSON)", options),
    create,
    error,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    const name = nameInput.value.trim();
    if (!STACK_NAME.test(name)) {
      error.textContent = "Stack name: letters, digits, _ and - only.";
      nameInput.focus();
      return;
    }
    let definition;
    try {
      const { ops, opts } = parsed();
      definition = { operations: ops, options: opts };
    } catch (exc) {
      error.textContent = `Not created: ${exc.message}`;
      return;
    }
    try {
      await api("PUT", `${orgPath("stacks")}/${encodeURIComponent(name)}`, { json: definition });
      location.hash = `#/stacks/${encodeURIComponent(name)}`;
    } catch (exc) {
      error.textContent = exc instanceof ApiError ? `Not created: ${exc.message}` : String(exc);
    }
  });
  replace(
    main,
    h("p", { class: "back" }, h("a", { href: "#/stacks" }, "← All stacks")),
    h("h1", { tabindex: "-1" }, "New stack"),
    h("div", { class: "detail-grid" },
      form,
      h("section", { "aria-label": "Live preview" }, h("h2", {}, "Live preview"), chooser.element, h("figure", {}, img), previewError)),
  );
  await preview();
}
