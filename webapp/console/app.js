// The console's entry point: sign-in, navigation and the hash router.
// Views: #/images (gallery), #/images/{hash} (detail), #/stacks, #/stacks/new, #/stacks/{name}.

import { api, ApiError, clearSession, saveSession, session, TOKEN_SECONDS } from "./api.js";
import { field, h, replace } from "./dom.js";
import { showGallery } from "./gallery.js";
import { showDetail } from "./detail.js";
import { setOrganization } from "./renderurls.js";
import { showStack, showStackForm, showStacks } from "./stacks.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const ORG_NAME = /^[a-z0-9][a-z0-9-]{0,99}$/;
let signedOutMessage = "";

function renderNav() {
  const current = session();
  if (!current) {
    replace(nav);
    return;
  }
  const here = location.hash.startsWith("#/stacks") ? "stacks" : "images";
  replace(
    nav,
    h("a", { href: "#/images", "aria-current": here === "images" ? "page" : null }, "Images"),
    h("a", { href: "#/stacks", "aria-current": here === "stacks" ? "page" : null }, "Stacks"),
    // the OpenAPI 3.1 description of the API the console uses (webapp/openapi.py)
    h("a", { href: "/openapi.json" }, "API description"),
    h("span", { class: "who" }, `Organization: ${current.org}`),
    h("button", { type: "button", onclick: signOut }, "Sign out"),
  );
}

/** Show the view of ``hash``: through hashchange when it differs from the current one. */
function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function signOut() {
  clearSession();
  setOrganization(null);
  organizationLoaded = null;
  go("#/");
}

/** The sign-in form; a wrong key shows only a message. */
function showSignIn() {
  document.title = "Sign in · cropstack console";
  const org = h("input", { type: "text", autocomplete: "organization", required: true, spellcheck: "false", autocapitalize: "none" });
  const key = h("input", { type: "password", autocomplete: "current-password", required: true, spellcheck: "false" });
  const error = h("p", { class: "error", role: "alert" }, signedOutMessage);
  signedOutMessage = "";
  const button = h("button", { type: "submit" }, "Sign in");
  // No name attributes and method=post: even without this script the key could never
  // end up in a URL.
  const form = h(
    "form",
    { class: "signin", method: "post", action: "#", novalidate: true },
    field("Organization", org),
    field("API key", key),
    button,
    error,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const orgName = org.value.trim();
    error.textContent = "";
    if (!ORG_NAME.test(orgName)) {
      error.textContent = "Enter the organization's name (lowercase letters, digits and -).";
      org.focus();
      return;
    }
    if (!key.value) {
      error.textContent = "Enter the API key.";
      key.focus();
      return;
    }
    button.disabled = true;
    try {
      const issued = await api("GET", "/user/apikeys/token", {
        query: `expires_in=${TOKEN_SECONDS}&renewable=false`,
        key: key.value,
      });
      const { token, payload } = issued.data;
      // The token must open this organization's images before it is kept.
      await api("GET", `/sourceimages/${encodeURIComponent(orgName)}`, {
        query: "limit=0",
        bearer: token,
      });
      key.value = "";
      saveSession(orgName, token, payload.exp);
      go("#/images");
    } catch (exc) {
      error.textContent = signInMessage(exc, orgName);
      key.select();
    } finally {
      button.disabled = false;
    }
  });
  replace(main, h("h1", { tabindex: "-1" }, "Sign in"), h("p", {}, "Sign in with an API key of the organization."), form);
  org.focus();
}

function signInMessage(exc, orgName) {
  if (!(exc instanceof ApiError)) return `Sign-in failed: ${exc.message}`;
  if (exc.invalidAuthentication) return "Sign-in failed: this API key is not valid.";
  if (exc.status === 403) {
    return `Sign-in failed: this API key may not read the images of organization ${orgName}.`;
  }
  return `Sign-in failed: ${exc.message}`;
}

async function loadOrganization() {
  try {
    const answer = await api("GET", `/organizations/${encodeURIComponent(session().org)}`);
    setOrganization(answer.data);
  } catch {
    setOrganization({}); // a key without org:read: renders are assumed public
  }
}

let organizationLoaded = null;
// Each navigation's number: a view that finishes loading after a newer navigation began
// is dropped instead of replacing the newer one.
let navigation = 0;

/** Show the view the location's hash names. */
async function route() {
  const current = ++navigation;
  renderNav();
  if (!session()) {
    showSignIn();
    return;
  }
  organizationLoaded ??= loadOrganization();
  await organizationLoaded;
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  // Views are built off-page and shown once loaded.
  const view = h("div", { class: "view" });
  try {
    if (parts[0] === "images" && parts[1]) await showDetail(view, parts[1]);
    else if (parts[0] === "stacks" && parts[1] === "new") await showStackForm(view);
    else if (parts[0] === "stacks" && parts[1]) await showStack(view, parts[1]);
    else if (parts[0] === "stacks") await showStacks(view);
    else await showGallery(view);
  } catch (exc) {
    replace(view, h("h1", { tabindex: "-1" }, "Something went wrong"), h("p", { class: "error", role: "alert" }, exc.message));
  }
  if (current !== navigation) return;
  replace(main, view);
  const heading = main.querySelector("h1");
  if (heading && !main.contains(document.activeElement)) heading.focus();
}

window.addEventListener("hashchange", () => {
  route();
});
window.addEventListener("console:signed-out", (event) => {
  clearSession();
  organizationLoaded = null;
  signedOutMessage = `Signed out (sign in again): ${event.detail}`;
  route();
});

route();
