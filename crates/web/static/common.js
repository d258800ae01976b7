// Shared by every page module: messages from the page's catalogue, API calls with the session's
// CSRF token, and small DOM helpers. Nothing here builds HTML from strings: text goes in through
// textContent only, so data can never become markup.

const catalogue = JSON.parse(document.getElementById("i18n")?.textContent || "{}");
export const lang = document.documentElement.lang || "en";

/** The page's own values (rendered by the server as a JSON data block). */
export function pageData() {
  return JSON.parse(document.getElementById("page-data")?.textContent || "{}");
}

/** A message by dotted key, with {placeholders} filled in. */
export function t(key, args = {}) {
  let v = key.split(".").reduce((o, k) => (o && typeof o === "object" ? o[k] : undefined), catalogue);
  if (typeof v !== "string") v = key;
  for (const [name, value] of Object.entries(args)) v = v.split("{" + name + "}").join(String(value));
  return v;
}

/** An API failure: the server's error code and a message in the page's language. */
export class ApiFailure extends Error {
  constructor(status, code, serverMessage) {
    const known = t("errors." + code);
    super(known !== "errors." + code ? known : t("common.error_generic"));
    this.status = status;
    this.code = code;
    this.serverMessage = serverMessage;
  }
}

function csrfToken() {
  for (const part of document.cookie.split(";")) {
    const [name, ...rest] = part.trim().split("=");
    if (name === "__Host-sigillum_csrf") return rest.join("=");
  }
  return "";
}

/** Calls the JSON API; resolves with the parsed body (or the Response for non-JSON). */
export async function api(method, path, body, headers = {}) {
  const init = { method, headers: { ...headers }, credentials: "same-origin" };
  if (method !== "GET" && method !== "HEAD") init.headers["X-CSRF-Token"] = csrfToken();
  if (body instanceof FormData) init.body = body;
  else if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let r;
  try {
    r = await fetch(path, init);
  } catch {
    throw new ApiFailure(0, "network", "");
  }
  return handle(r);
}

/** The body of an API response, or an ApiFailure. */
export async function handle(r) {
  const type = r.headers.get("content-type") || "";
  if (!r.ok) {
    let code = "internal", message = "";
    if (type.includes("json")) {
      const e = await r.json().catch(() => ({}));
      code = e?.error?.code || code;
      message = e?.error?.message || "";
    }
    if (r.status === 401 && code === "unauthenticated" && location.pathname.startsWith("/app")) {
      location.assign("/app/login");
    }
    throw new ApiFailure(r.status, code, message);
  }
  if (r.status === 204) return null;
  return type.includes("json") ? r.json() : r;
}

/** Shows an error (or clears it with null) in an element with role=alert. */
export function showError(el, err) {
  if (!el) return;
  el.textContent = err ? (err instanceof ApiFailure ? err.message : t("common.error_generic")) : "";
  if (err && !(err instanceof ApiFailure)) console.warn(err);
}

/** Creates an element with attributes and children (strings become text nodes). */
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false || v === null || v === undefined) continue;
    if (k === "class") e.className = v;
    else if (k === "dataset") Object.assign(e.dataset, v);
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
  return e;
}

/** A time in the page's language. */
export function formatTime(unixMs) {
  return new Intl.DateTimeFormat(lang, { dateStyle: "medium", timeStyle: "short" }).format(new Date(unixMs));
}

/** Fills every <time data-unix-ms> of the page. */
export function fillTimes(root = document) {
  for (const e of root.querySelectorAll("time[data-unix-ms]")) {
    const ms = Number(e.dataset.unixMs);
    if (!Number.isFinite(ms) || ms <= 0) continue;
    e.dateTime = new Date(ms).toISOString();
    e.textContent = formatTime(ms);
  }
}

/** The values of a form's named controls. */
export function formValues(form) {
  return Object.fromEntries(new FormData(form).entries());
}

/** Checks a form with the browser's own (localised) validation; false when invalid. */
export function valid(form) {
  if (form.checkValidity()) return true;
  form.reportValidity();
  return false;
}

/** Opens a modal dialog; its cancel button closes it. */
export function openDialog(dialog, cancelButton) {
  cancelButton?.addEventListener("click", () => dialog.close(), { once: true });
  dialog.showModal();
}

/** Saves a Blob under a file name through a temporary object URL. */
export function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = el("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// Every workspace page: the sign-out button.
document.getElementById("sign-out")?.addEventListener("click", async () => {
  try {
    await api("POST", "/api/v1/auth/logout");
  } finally {
    location.assign("/app/login");
  }
});
fillTimes();

/** A page preview as an object URL; waits while the server is still rendering (503). */
export async function loadPreview(url, headers = {}) {
  for (let attempt = 0; attempt < 60; attempt++) {
    const r = await fetch(url, { headers, credentials: "same-origin" }).catch(() => null);
    if (r && r.ok) return URL.createObjectURL(await r.blob());
    if (r && r.status !== 503) return null;
    const wait = Number(r?.headers.get("retry-after")) || 1;
    await new Promise((done) => setTimeout(done, Math.min(wait, 5) * 1000));
  }
  return null;
}

/** One page of a document: a box of the page's proportions holding its preview image. */
export function pageBox(number, size, label) {
  const box = el("div", { class: "page", dataset: { page: String(number) }, role: "group", "aria-label": label });
  box.style.aspectRatio = `${size.width} / ${size.height}`;
  const img = el("img", { alt: "", draggable: "false" });
  box.append(img);
  return { box, img };
}

/** Places an element over a page at a field's geometry (PDF points, origin top-left). */
export function placeOnPage(elem, field, size) {
  elem.style.left = `${(field.x / size.width) * 100}%`;
  elem.style.top = `${(field.y / size.height) * 100}%`;
  elem.style.width = `${(field.width / size.width) * 100}%`;
  elem.style.height = `${(field.height / size.height) * 100}%`;
}
