// The signature dialog: draw with pointer events (mouse, pen or finger) on a canvas, or type the
// name and choose one of the script faces (the same font programs the sealed PDF embeds).
// Resolves with the API's `signature` value.
import { t } from "./common.js";

export function signatureDialog(defaultName) {
  const dialog = document.getElementById("adopt");
  const form = document.getElementById("adopt-form");
  const canvas = document.getElementById("pad");
  const ctx = canvas.getContext("2d");
  const typed = document.getElementById("typed");
  const previews = [...document.querySelectorAll("#faces .typed-preview")];
  const error = document.getElementById("adopt-error");
  const tabs = { draw: document.getElementById("tab-draw"), type: document.getElementById("tab-type") };
  const panes = { draw: document.getElementById("pane-draw"), type: document.getElementById("pane-type") };
  let mode = "draw";
  let inked = false;

  const select = (m) => {
    mode = m;
    for (const k of Object.keys(tabs)) {
      tabs[k].setAttribute("aria-selected", String(k === m));
      panes[k].hidden = k !== m;
    }
    error.textContent = "";
    if (m === "type") typed.focus();
  };
  tabs.draw.onclick = () => select("draw");
  tabs.type.onclick = () => select("type");
  typed.value ||= defaultName;
  const showTyped = () => previews.forEach((p) => (p.textContent = typed.value));
  showTyped();
  typed.oninput = showTyped;

  const clear = () => {
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    inked = false;
  };
  document.getElementById("pad-clear").onclick = clear;
  ctx.lineWidth = 3;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.strokeStyle = "#10284a";
  const point = (ev) => {
    const r = canvas.getBoundingClientRect();
    return [((ev.clientX - r.left) / r.width) * canvas.width, ((ev.clientY - r.top) / r.height) * canvas.height];
  };
  let drawing = false;
  canvas.onpointerdown = (ev) => {
    ev.preventDefault();
    canvas.setPointerCapture(ev.pointerId);
    drawing = true;
    ctx.beginPath();
    ctx.moveTo(...point(ev));
  };
  canvas.onpointermove = (ev) => {
    if (!drawing) return;
    ctx.lineTo(...point(ev));
    ctx.stroke();
    inked = true;
  };
  canvas.onpointerup = canvas.onpointercancel = () => (drawing = false);

  return new Promise((resolve) => {
    const cancel = document.getElementById("adopt-cancel");
    cancel.onclick = () => {
      dialog.close();
      resolve(null);
    };
    form.onsubmit = (ev) => {
      ev.preventDefault();
      if (mode === "draw") {
        if (!inked) {
          error.textContent = t("sign.draw_hint");
          return;
        }
        const url = canvas.toDataURL("image/png");
        dialog.close();
        resolve({ kind: "drawn", png_base64: url.slice(url.indexOf(",") + 1), preview: url });
      } else {
        const text = typed.value.trim();
        if (!text) {
          error.textContent = t("sign.typed_label");
          typed.focus();
          return;
        }
        const font = form.querySelector("input[name=font]:checked")?.value || "dancing-script";
        dialog.close();
        resolve({ kind: "typed", text, font });
      }
    };
    dialog.showModal();
  });
}
