// Building DOM nodes without HTML strings: every text a user or the API supplies is set
// as text, never parsed, so an image called "<img onerror=…>" stays a name.

/**
 * An element: attributes (``on…`` keys become listeners; true → empty attribute; null,
 * undefined and false are left out) and children (strings become text nodes; arrays are
 * flattened; null is skipped).
 */
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else if (name === "value" && "value" in element) {
      element.value = String(value);
    } else {
      element.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(element, children);
  return element;
}

function append(parent, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(parent, child);
    else parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace every child of ``parent`` with ``children``. */
export function replace(parent, ...children) {
  parent.replaceChildren();
  append(parent, children);
}

/** Say ``text`` to screen readers through the page's polite live region. */
export function announce(text) {
  const region = document.getElementById("announce");
  region.textContent = "";
  // A new text node after a tick is announced even when the text repeats.
  setTimeout(() => { region.textContent = text; }, 50);
}

let idCounter = 0;
/** A fresh element id with ``prefix`` (labels need ids to point at). */
export function uid(prefix) {
  idCounter += 1;
  return `${prefix}-${idCounter}`;
}

/** A label + control pair: ``<label for=id>text</label>`` before the control. */
export function field(labelText, control, hint) {
  if (!control.id) control.id = uid("field");
  const parts = [h("label", { for: control.id }, labelText), control];
  if (hint) {
    const hintId = uid("hint");
    control.setAttribute("aria-describedby", hintId);
    parts.push(h("p", { class: "hint", id: hintId }, hint));
  }
  return h("div", { class: "field" }, parts);
}
