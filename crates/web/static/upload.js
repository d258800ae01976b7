// Upload with a progress bar (XMLHttpRequest reports upload progress; fetch does not).
import { t, ApiFailure, showError, valid } from "./common.js";

const form = document.getElementById("upload");
const error = document.getElementById("error");
const progressField = document.getElementById("progress-field");
const progress = document.getElementById("progress");
const progressText = document.getElementById("progress-text");
const titleInput = document.getElementById("title");
const fileInput = document.getElementById("file");

fileInput.addEventListener("change", () => {
  const f = fileInput.files[0];
  if (f && !titleInput.value) titleInput.value = f.name.replace(/\.pdf$/i, "");
});

function csrf() {
  const m = document.cookie.split(";").map((c) => c.trim()).find((c) => c.startsWith("__Host-sigillum_csrf="));
  return m ? m.slice("__Host-sigillum_csrf=".length) : "";
}

form.addEventListener("submit", (ev) => {
  ev.preventDefault();
  showError(error, null);
  if (!valid(form)) return;
  const file = fileInput.files[0];
  if (file.size > Number(form.dataset.maxBytes)) {
    showError(error, new ApiFailure(413, "payload_too_large", ""));
    return;
  }
  const body = new FormData();
  body.append("title", titleInput.value.trim());
  body.append("file", file, file.name);
  const xhr = new XMLHttpRequest();
  xhr.open("POST", "/api/v1/envelopes");
  xhr.setRequestHeader("X-CSRF-Token", csrf());
  xhr.responseType = "json";
  progressField.hidden = false;
  form.querySelector("button[type=submit]").disabled = true;
  xhr.upload.addEventListener("progress", (e) => {
    if (!e.lengthComputable) return;
    const pct = Math.round((e.loaded / e.total) * 100);
    progress.value = pct;
    progressText.textContent = pct < 100 ? `${pct} %` : t("upload.processing");
  });
  xhr.addEventListener("load", () => {
    if (xhr.status === 201 && xhr.response?.id) {
      location.assign(`/app/envelopes/${encodeURIComponent(xhr.response.id)}`);
      return;
    }
    form.querySelector("button[type=submit]").disabled = false;
    progressField.hidden = true;
    const e = xhr.response?.error || {};
    showError(error, new ApiFailure(xhr.status, e.code || "internal", e.message || ""));
  });
  xhr.addEventListener("error", () => {
    form.querySelector("button[type=submit]").disabled = false;
    showError(error, new ApiFailure(0, "network", ""));
  });
  xhr.send(body);
});
