// The envelope page: the editor while it is a draft, otherwise recipient progress, downloads and
// the audit timeline, kept up to date live over Server-Sent Events.
import { t, api, el, pageData, showError, formatTime, openDialog } from "./common.js";
import { startEditor } from "./editor.js";

const data = pageData();
const envelope = data.envelope;
const base = `/api/v1/envelopes/${encodeURIComponent(envelope.id)}`;

function wireDelete() {
  const dialog = document.getElementById("delete-dialog");
  document.getElementById("delete-open")?.addEventListener("click", () =>
    openDialog(dialog, document.getElementById("delete-cancel")),
  );
  document.getElementById("delete-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      await api("DELETE", base);
      location.assign("/app");
    } catch (e) {
      showError(document.getElementById("delete-error"), e);
    }
  });
}

function recipientItem(r) {
  return el(
    "li",
    { class: "recipient", dataset: { recipientId: r.id } },
    el("span", { class: "who" }, el("strong", {}, r.name), " ", el("span", { class: "email" }, r.email)),
    el("span", { class: "role" }, t("editor.roles." + r.role)),
    el("span", { class: `badge status-${r.status}` }, t("status." + r.status)),
  );
}

function renderProgress(detail) {
  const list = document.getElementById("progress-list");
  list.replaceChildren(...[...detail.recipients].sort((a, b) => a.routing_order - b.routing_order).map(recipientItem));
  const status = document.getElementById("envelope-status");
  status.className = `badge status-${detail.status}`;
  status.textContent = t("status." + detail.status);
  document.getElementById("final-item").hidden = detail.status !== "completed";
  document.getElementById("final-sha").textContent = detail.final_sha256 || "–";
  if (detail.status !== "sent") document.getElementById("void-open")?.remove();
}

/** One audit event as a timeline entry: time, what happened, who. */
function timelineItem(entry) {
  const ev = entry.event || {};
  const kind = ev.kind || "";
  const label = t("events." + kind) === "events." + kind ? kind : t("events." + kind);
  const who = entry.disclosed?.["actor.name"]?.value || entry.disclosed?.["actor.email"]?.value || "";
  const time = Date.parse(ev.time);
  return el(
    "li",
    { dataset: { kind, seq: String(entry.seq) } },
    el("time", { datetime: ev.time || "" }, Number.isFinite(time) ? formatTime(time) : ""),
    el("span", { class: "what" }, label),
    who ? el("span", { class: "actor" }, who) : null,
  );
}

const REFRESH_ON = new Set([
  "recipient.signed", "recipient.declined", "envelope.completed", "envelope.voided", "envelope.expired",
  "email.sent", "link.opened",
]);

function startDetail() {
  renderProgress(envelope);
  const timeline = document.getElementById("timeline");
  const live = document.getElementById("live");
  const seen = new Set();
  let refreshing = null;
  const refresh = () => {
    refreshing ??= api("GET", base)
      .then(renderProgress)
      .catch(() => {})
      .finally(() => (refreshing = null));
  };
  const stream = new EventSource(`${base}/events/stream`);
  stream.addEventListener("open", () => (live.hidden = false));
  stream.addEventListener("error", () => (live.hidden = true));
  stream.addEventListener("audit", (msg) => {
    const payload = JSON.parse(msg.data);
    const entry = payload.event;
    if (seen.has(entry.seq)) return;
    seen.add(entry.seq);
    timeline.append(timelineItem(entry));
    if (REFRESH_ON.has(entry.event?.kind)) refresh();
  });

  const voidDialog = document.getElementById("void-dialog");
  document.getElementById("void-open")?.addEventListener("click", () =>
    openDialog(voidDialog, document.getElementById("void-cancel")),
  );
  document.getElementById("void-form")?.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const reason = document.getElementById("void-reason");
    if (!reason.reportValidity()) return;
    try {
      await api("POST", `${base}/void`, { reason: reason.value.trim() });
      voidDialog.close();
      refresh();
    } catch (e) {
      showError(document.getElementById("void-error"), e);
    }
  });
}

wireDelete();
if (document.getElementById("editor")) startEditor(envelope);
else startDetail();
