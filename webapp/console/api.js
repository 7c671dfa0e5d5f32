// The API of this same server, called as the signed-in user. Signing in trades the API key
// for a short-lived token (GET /user/apikeys/token, bound to this computer's address):
// only the token is kept, in sessionStorage (this tab, until it closes, the token expires
// or the user signs out), and it only ever travels in the Authorization header, never in
// a URL. The API key itself is not stored anywhere.

const STORE = "cropstack.console.session";
/** Lifetime of a console token, seconds (a working day). */
export const TOKEN_SECONDS = 8 * 3600;

/** The signed-in session ``{org, token, expires}``, or null. */
export function session() {
  try {
    const value = JSON.parse(sessionStorage.getItem(STORE) || "null");
    return value && typeof value.org === "string" && typeof value.token === "string" ? value : null;
  } catch {
    return null;
  }
}

export function saveSession(org, token, expires) {
  sessionStorage.setItem(STORE, JSON.stringify({ org, token, expires }));
}

export function clearSession() {
  sessionStorage.removeItem(STORE);
}

function authorise(headers, key) {
  if (key) headers.set("Api-Key", key);
  else if (session()) headers.set("Authorization", `Bearer ${session().token}`);
}

/** An answer of the API that was not a success: HTTP status and the error's message. */
export class ApiError extends Error {
  constructor(status, message, error = {}) {
    super(message);
    this.status = status;
    this.invalidAuthentication = Boolean(error.invalid_authentication);
  }
}

async function errorOf(response) {
  let error = {};
  try {
    const body = await response.json();
    error = (body && body.error) || {};
    if (body && body.invalid_authentication) error.invalid_authentication = true;
  } catch {
    // not JSON: a proxy's page, say; the status is all there is
  }
  const message = typeof error.message === "string" ? error.message : response.statusText;
  return new ApiError(response.status, message || `HTTP ${response.status}`, error);
}

/**
 * Call the API: ``path`` starts with "/"; ``json`` is sent as a JSON body; ``key`` (an API
 * key) or ``bearer`` (a token) is sent instead of the session's token (sign-in).
 * Resolves to ``{status, data, headers}`` (``data`` is null without a JSON body);
 * rejects with ApiError.
 */
export async function api(method, path, { json, query, key, bearer } = {}) {
  const headers = new Headers({ Accept: "application/json" });
  if (bearer) headers.set("Authorization", `Bearer ${bearer}`);
  else authorise(headers, key);
  let body;
  if (json !== undefined) {
    headers.set("Content-Type", "application/json");
    body = JSON.stringify(json);
  }
  const qs = query ? `?${query}` : "";
  let response;
  try {
    response = await fetch(path + qs, { method, headers, body, cache: "no-store", credentials: "omit" });
  } catch {
    throw new ApiError(0, "The server did not answer. Check the connection and try again.");
  }
  if (!response.ok) {
    const error = await errorOf(response);
    if (error.invalidAuthentication && !key && !bearer) {
      window.dispatchEvent(new CustomEvent("console:signed-out", { detail: error.message }));
    }
    throw error;
  }
  const type = response.headers.get("Content-Type") || "";
  const data = type.includes("json") ? await response.json() : null;
  return { status: response.status, data, headers: response.headers };
}

/** Path of the organization's API collection, with the name encoded. */
export function orgPath(prefix) {
  return `/${prefix}/${encodeURIComponent(session().org)}`;
}

/**
 * Upload one file (multipart ``filedata``) with progress: ``onProgress(fraction 0..1)``.
 * Resolves to the API's ``{total, items}``; rejects with ApiError.
 */
export function uploadFile(file, onProgress) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("POST", orgPath("sourceimages"));
    request.setRequestHeader("Authorization", `Bearer ${session().token}`);
    request.setRequestHeader("Accept", "application/json");
    request.responseType = "json";
    request.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    });
    request.addEventListener("load", () => {
      const body = request.response;
      if (request.status >= 200 && request.status < 300 && body) {
        onProgress(1);
        resolve(body);
      } else {
        const error = (body && body.error) || {};
        reject(new ApiError(request.status, error.message || `HTTP ${request.status}`, error));
      }
    });
    request.addEventListener("error", () => reject(new ApiError(0, "The upload was interrupted.")));
    const form = new FormData();
    form.append("filedata", file, file.name);
    request.send(form);
  });
}
