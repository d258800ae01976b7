// The signer ceremony: access code (when set), consent to electronic records, the document with
// this recipient's fields highlighted and a "next field" guide, the signature, then a finished
// page with the download once everyone has signed. Talks only to /api/v1/signing/{token}.
import { t, lang, el, pageData, handle, ApiFailure, showError, loadPreview, pageBox, placeOnPage, saveBlob } from "./common.js";
import { signatureDialog } from "./signature-pad.js";

const token = pageData().token;
const base = `/api/v1/signing/${encodeURIComponent(token)}`;
let accessCode = "";
let view = null;
let signature = null;
const done = new Set();
const values = {};

const sections = ["loading", "fatal", "access", "consent", "ceremony", "done", "declined", "ended", "waiting"];
function show(id) {
  for (const s of sections) document.getElementById(s).hidden = s !== id;
  document.getElementById("main").focus();
}

async function call(method, path = "", body) {
  const headers = {};
  if (accessCode) headers["X-Access-Code"] = accessCode;
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let r;
  try {
    r = await fetch(base + path, init);
  } catch {
    throw new ApiFailure(0, "network", "");
  }
  return handle(r);
}

function fail(e) {
  if (e.status === 403 && (e.code === "access_code_required" || e.code === "access_code_invalid")) {
    show("access");
    if (e.code === "access_code_invalid") showError(document.getElementById("access-error"), e);
    document.getElementById("access-code").focus();
  } else if (e.status === 410) {
    show("ended");
  } else {
    const fatal = document.getElementById("fatal");
    fatal.textContent = e.status === 404 ? t("errors.gone") : e.message;
    show("fatal");
  }
}

function fromLine() {
  return t("sign.from", { sender: view.envelope.sender || "", title: view.envelope.title });
}

async function load() {
  if (!token) return fail(new ApiFailure(404, "not_found", ""));
  try {
    view = await call("GET");
  } catch (e) {
    return fail(e);
  }
  const r = view.recipient;
  if (r.status === "signed") return finished();
  if (r.status === "declined") return show("declined");
  if (view.envelope.status !== "sent") return view.envelope.status === "completed" ? finished() : show("ended");
  if (!r.can_act) return show("waiting");
  if (!r.consented) return consentStep();
  ceremony();
}

function consentStep() {
  document.getElementById("consent-from").textContent = fromLine();
  const message = document.getElementById("consent-message");
  if (view.envelope.message) {
    message.textContent = view.envelope.message;
    message.hidden = false;
  }
  show("consent");
}

document.getElementById("access-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const input = document.getElementById("access-code");
  if (!input.reportValidity()) return;
  accessCode = input.value.trim();
  showError(document.getElementById("access-error"), null);
  load();
});

document.getElementById("consent-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const agree = document.getElementById("consent-agree");
  if (!agree.reportValidity()) return;
  try {
    await call("POST", "/consent", { accepted: true });
    view.recipient.consented = true;
    ceremony();
  } catch (e) {
    showError(document.getElementById("consent-error"), e);
  }
});

// The ceremony.
const isRequired = (f) => f.required && !["date_signed", "name", "email"].includes(f.kind);
const isFilled = (f) => {
  if (f.kind === "signature" || f.kind === "initials") return done.has(f.id);
  if (f.kind === "text") return Boolean(values[f.id]?.trim());
  if (f.kind === "checkbox") return values[f.id] === true;
  return true;
};
const pending = () => view.fields.filter((f) => isRequired(f) && !isFilled(f));

function progress() {
  const left = pending().length;
  document.getElementById("fields-left").textContent = left ? t("sign.fields_left", { n: left }) : t("sign.all_done");
  document.getElementById("finish").disabled = left > 0;
}

function fieldElement(f) {
  const box = el("div", { class: `field-box signer-field kind-${f.kind}`, dataset: { fieldId: f.id, kind: f.kind } });
  const today = new Intl.DateTimeFormat(navigator.language || lang, { dateStyle: "medium" }).format(new Date());
  switch (f.kind) {
    case "signature":
    case "initials": {
      const button = el("button", { type: "button", class: "sign-here" }, t(f.kind === "signature" ? "sign.sign_here" : "sign.initial_here"));
      button.addEventListener("click", async () => {
        signature ??= await signatureDialog(view.recipient.name);
        if (!signature) return;
        done.add(f.id);
        const mark = signature.kind === "drawn"
          ? el("img", { src: signature.preview, alt: t("sign.adopt_title") })
          : el("span", { class: "script", "data-font": signature.font }, signature.text);
        box.replaceChildren(mark);
        box.classList.add("filled");
        progress();
        nextField();
      });
      box.append(button);
      break;
    }
    case "text": {
      const input = el("input", { type: "text", "aria-label": t("editor.kinds.text"), placeholder: t("sign.text_placeholder"), maxlength: "500" });
      input.addEventListener("input", () => {
        values[f.id] = input.value;
        progress();
      });
      box.append(input);
      break;
    }
    case "checkbox": {
      const input = el("input", { type: "checkbox", "aria-label": t("editor.kinds.checkbox") });
      input.addEventListener("change", () => {
        values[f.id] = input.checked;
        progress();
      });
      box.append(input);
      break;
    }
    case "date_signed":
      box.append(el("span", { class: "auto", title: t("sign.auto_filled") }, today));
      break;
    case "name":
      box.append(el("span", { class: "auto", title: t("sign.auto_filled") }, view.recipient.name));
      break;
    case "email":
      box.append(el("span", { class: "auto", title: t("sign.auto_filled") }, view.recipient.email));
      break;
  }
  return box;
}

function nextField() {
  const next = pending()[0];
  document.getElementById("next-field").textContent = t("sign.next_field");
  if (!next) {
    document.getElementById("finish").focus();
    return;
  }
  const box = document.querySelector(`[data-field-id="${next.id}"]`);
  box?.scrollIntoView({ behavior: "smooth", block: "center" });
  box?.querySelector("button, input")?.focus({ preventScroll: true });
}

function ceremony() {
  document.getElementById("ceremony-from").textContent = fromLine();
  const pagesEl = document.getElementById("sign-pages");
  const headers = accessCode ? { "X-Access-Code": accessCode } : {};
  const boxes = view.envelope.page_sizes.map((size, i) => {
    const { box, img } = pageBox(i + 1, size, t("editor.page_of", { n: i + 1, total: view.pages }));
    loadPreview(`${base}/pages/${i + 1}.png`, headers).then((url) => url && (img.src = url));
    return box;
  });
  pagesEl.replaceChildren(...boxes);
  for (const f of view.fields) {
    const size = view.envelope.page_sizes[f.page - 1];
    const e = fieldElement(f);
    placeOnPage(e, f, size);
    boxes[f.page - 1].append(e);
  }
  document.getElementById("next-field").onclick = nextField;
  document.getElementById("finish").onclick = finish;
  progress();
  show("ceremony");
}

async function finish() {
  const error = document.getElementById("finish-error");
  showError(error, null);
  const needsSignature = view.fields.some((f) => f.kind === "signature" || f.kind === "initials");
  if (needsSignature && !signature) {
    error.textContent = t("sign.missing_signature");
    return;
  }
  const body = { values: {}, locale: navigator.language || lang };
  for (const f of view.fields) {
    if (f.kind === "text" && values[f.id] !== undefined) body.values[f.id] = values[f.id];
    if (f.kind === "checkbox") body.values[f.id] = values[f.id] === true;
  }
  if (signature) {
    body.signature = signature.kind === "drawn"
      ? { kind: "drawn", png_base64: signature.png_base64 }
      : { kind: "typed", text: signature.text, font: signature.font };
  }
  const button = document.getElementById("finish");
  button.disabled = true;
  button.textContent = t("sign.finishing");
  try {
    await call("POST", "/complete", body);
    await finished();
  } catch (e) {
    button.disabled = false;
    button.textContent = t("sign.finish");
    showError(error, e);
  }
}

/** The finished page; the download appears once the envelope is completed (sealing runs in the background). */
async function finished() {
  document.getElementById("done-text").textContent = t("sign.done_text", { title: view.envelope.title });
  const next = document.getElementById("done-next");
  next.textContent = t("sign.done_waiting");
  show("done");
  for (let i = 0; i < 30; i++) {
    try {
      view = await call("GET");
    } catch {
      return;
    }
    if (view.envelope.status === "completed") {
      next.textContent = t("sign.done_complete");
      const download = document.getElementById("download");
      download.hidden = false;
      download.onclick = async () => {
        const r = await call("GET", "/document");
        saveBlob(await r.blob(), `${view.envelope.title}.pdf`);
      };
      return;
    }
    if (view.envelope.status !== "sent") return;
    await new Promise((ok) => setTimeout(ok, 2000));
  }
}

// Decline.
const declineDialog = document.getElementById("decline");
for (const b of document.querySelectorAll(".decline-open")) {
  b.addEventListener("click", () => {
    document.getElementById("decline-cancel").onclick = () => declineDialog.close();
    declineDialog.showModal();
  });
}
document.getElementById("decline-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const reason = document.getElementById("decline-reason");
  if (!reason.reportValidity()) return;
  try {
    await call("POST", "/decline", { reason: reason.value.trim() });
    declineDialog.close();
    show("declined");
  } catch (e) {
    showError(document.getElementById("decline-error"), e);
  }
});

load();
