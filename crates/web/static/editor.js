// The draft editor: recipients, then fields placed on the page previews by pointer (drag to move,
// the corner handle to resize) or by keyboard (arrows move, Shift+arrows resize, Delete removes).
// New fields stay in the page until the sender sends, then they are saved and the envelope sent.
import { t, api, el, showError, valid, formValues, loadPreview, pageBox, placeOnPage } from "./common.js";

const DEFAULT_SIZE = {
  signature: [180, 50], initials: [70, 40], date_signed: [120, 24], name: [160, 24],
  email: [200, 24], text: [160, 24], checkbox: [18, 18],
};
const MIN = 12;
const COLOURS = 6;

export function startEditor(envelope) {
  const base = `/api/v1/envelopes/${encodeURIComponent(envelope.id)}`;
  const sizes = envelope.pages;
  const recipients = [...envelope.recipients];
  const saved = [...envelope.fields];
  const staged = [];
  let nextTmp = 1;
  const pagesEl = document.getElementById("pages");
  const boxes = [];

  const colourOf = (rid) => `r-${Math.max(0, recipients.findIndex((r) => r.id === rid)) % COLOURS}`;
  const nameOf = (rid) => recipients.find((r) => r.id === rid)?.name || "";
  const fieldLabel = (f) => t("editor.field_label", { kind: t("editor.kinds." + f.kind), name: nameOf(f.recipient_id), page: f.page });

  // Pages and their previews.
  sizes.forEach((size, i) => {
    const { box, img } = pageBox(i + 1, size, t("editor.page_of", { n: i + 1, total: sizes.length }));
    boxes.push(box);
    pagesEl.append(box);
    if (!envelope.previews_failed) {
      loadPreview(`${base}/pages/${i + 1}.png`).then((url) => url && (img.src = url));
    }
  });
  const pageSelect = document.getElementById("field-page");
  pageSelect.replaceChildren(...sizes.map((_, i) => el("option", { value: String(i + 1) }, String(i + 1))));

  // Recipients.
  const list = document.getElementById("recipient-list");
  const select = document.getElementById("field-recipient");
  function renderRecipients() {
    list.replaceChildren(
      ...recipients.map((r) =>
        el("li", { class: "recipient", dataset: { recipientId: r.id } },
          el("span", { class: `swatch ${colourOf(r.id)}`, "aria-hidden": "true" }),
          el("span", { class: "who" }, el("strong", {}, r.name), " ", el("span", { class: "email" }, r.email)),
          el("span", { class: "role" }, `${t("editor.roles." + r.role)} · ${r.routing_order}`)),
      ),
    );
    const current = select.value;
    select.replaceChildren(
      ...recipients.filter((r) => r.role !== "cc").map((r) => el("option", { value: r.id }, `${r.name} <${r.email}>`)),
    );
    if (current) select.value = current;
    const any = select.options.length > 0;
    document.getElementById("field-tools").hidden = !any;
    document.getElementById("no-recipients").hidden = any;
  }
  const recipientForm = document.getElementById("add-recipient");
  recipientForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const error = document.getElementById("recipient-error");
    showError(error, null);
    if (!valid(recipientForm)) return;
    const v = formValues(recipientForm);
    const body = { name: v.name.trim(), email: v.email.trim(), role: v.role, routing_order: Number(v.routing_order), language: v.language };
    if (v.access_code) body.access_code = v.access_code;
    try {
      const r = await api("POST", `${base}/recipients`, body);
      recipients.push(r);
      renderRecipients();
      select.value = r.id;
      recipientForm.reset();
      document.getElementById("r-order").value = String(body.routing_order);
      document.getElementById("r-language").value = body.language;
      document.getElementById("r-name").focus();
    } catch (e) {
      showError(error, e);
    }
  });

  // Fields.
  const unsaved = document.getElementById("unsaved");
  const updateUnsaved = () => (unsaved.textContent = staged.length ? t("editor.unsaved", { n: staged.length }) : "");

  function clamp(f) {
    const s = sizes[f.page - 1];
    f.width = Math.min(Math.max(f.width, MIN), s.width);
    f.height = Math.min(Math.max(f.height, MIN), s.height);
    f.x = Math.min(Math.max(f.x, 0), s.width - f.width);
    f.y = Math.min(Math.max(f.y, 0), s.height - f.height);
  }

  function drawField(f, editable) {
    const box = el("div", {
      class: `field-box ${colourOf(f.recipient_id)}${editable ? " editable" : " saved"}`,
      tabindex: "0",
      role: "group",
      "aria-label": fieldLabel(f),
      dataset: { kind: f.kind },
    }, el("span", { class: "label" }, `${t("editor.kinds." + f.kind)} · ${nameOf(f.recipient_id)}`));
    placeOnPage(box, f, sizes[f.page - 1]);
    boxes[f.page - 1].append(box);
    if (!editable) return box;
    const handle = el("span", { class: "handle", "aria-hidden": "true" });
    const remove = el("button", { type: "button", class: "remove", "aria-label": t("editor.remove_field") }, "×");
    box.append(handle, remove);
    remove.addEventListener("click", () => removeField(f, box));
    // Pointer: drag the box to move it, the handle to resize it.
    box.addEventListener("pointerdown", (ev) => {
      if (ev.target === remove) return;
      ev.preventDefault();
      box.focus();
      const resizing = ev.target === handle;
      const page = boxes[f.page - 1];
      const scale = sizes[f.page - 1].width / page.clientWidth;
      const start = { x: ev.clientX, y: ev.clientY, f: { ...f } };
      box.setPointerCapture(ev.pointerId);
      const move = (m) => {
        const dx = (m.clientX - start.x) * scale, dy = (m.clientY - start.y) * scale;
        if (resizing) {
          f.width = start.f.width + dx;
          f.height = start.f.height + dy;
        } else {
          f.x = start.f.x + dx;
          f.y = start.f.y + dy;
        }
        clamp(f);
        placeOnPage(box, f, sizes[f.page - 1]);
      };
      const up = () => {
        box.removeEventListener("pointermove", move);
        box.removeEventListener("pointerup", up);
        box.removeEventListener("pointercancel", up);
      };
      box.addEventListener("pointermove", move);
      box.addEventListener("pointerup", up);
      box.addEventListener("pointercancel", up);
    });
    // Keyboard alternative.
    box.addEventListener("keydown", (ev) => {
      const step = ev.altKey ? 1 : 5;
      const d = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] }[ev.key];
      if (d) {
        ev.preventDefault();
        if (ev.shiftKey) {
          f.width += d[0];
          f.height += d[1];
        } else {
          f.x += d[0];
          f.y += d[1];
        }
        clamp(f);
        placeOnPage(box, f, sizes[f.page - 1]);
      } else if (ev.key === "Delete" || ev.key === "Backspace") {
        ev.preventDefault();
        removeField(f, box);
      }
    });
    return box;
  }

  function removeField(f, box) {
    const i = staged.indexOf(f);
    if (i >= 0) staged.splice(i, 1);
    box.remove();
    updateUnsaved();
    document.querySelector(`.kind[data-kind="${f.kind}"]`)?.focus();
  }

  for (const kindButton of document.querySelectorAll(".kind")) {
    kindButton.addEventListener("click", () => {
      const recipient_id = select.value;
      if (!recipient_id) return;
      const page = Number(pageSelect.value) || 1;
      const s = sizes[page - 1];
      const [width, height] = DEFAULT_SIZE[kindButton.dataset.kind];
      // Each new field lands a little below the previous one, so none hides another.
      const offset = (staged.filter((f) => f.page === page).length % 8) * (height + 8);
      const f = {
        tmp: nextTmp++, recipient_id, kind: kindButton.dataset.kind, page, required: true,
        x: s.width * 0.1, y: s.height * 0.3 + offset, width, height,
      };
      clamp(f);
      staged.push(f);
      drawField(f, true).focus();
      updateUnsaved();
    });
  }

  // Send: save the new fields, then send.
  const sendForm = document.getElementById("send");
  sendForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const error = document.getElementById("send-error");
    showError(error, null);
    if (!valid(sendForm)) return;
    const button = document.getElementById("send-button");
    button.disabled = true;
    button.textContent = t("editor.sending");
    try {
      while (staged.length) {
        const f = staged[0];
        const body = { recipient_id: f.recipient_id, kind: f.kind, page: f.page, required: f.required };
        for (const k of ["x", "y", "width", "height"]) body[k] = Math.round(f[k] * 100) / 100;
        saved.push(await api("POST", `${base}/fields`, body));
        staged.shift();
        updateUnsaved();
      }
      const v = formValues(sendForm);
      const body = {};
      if (v.message?.trim()) body.message = v.message.trim();
      if (v.expires_in_days) body.expires_in_days = Number(v.expires_in_days);
      await api("POST", `${base}/send`, body);
      location.reload();
    } catch (e) {
      showError(error, e);
      button.disabled = false;
      button.textContent = t("editor.send");
    }
  });

  renderRecipients();
  for (const f of saved) drawField(f, false);
}
