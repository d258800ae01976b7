// Settings: API keys (secret shown once), webhook subscriptions (signing secret shown once) and
// two-factor authentication.
import { t, api, el, showError, valid, formatTime } from "./common.js";

async function keys() {
  const list = document.getElementById("key-list");
  const live = (await api("GET", "/api/v1/api-keys")).api_keys.filter((k) => !k.revoked);
  list.replaceChildren(
    ...(live.length ? live : [null]).map((k) =>
      k
        ? el("li", {}, el("span", {}, el("strong", {}, k.name), " ", el("code", {}, `${k.prefix}…`)),
            el("button", { type: "button", class: "danger small", onclick: async () => {
              await api("DELETE", `/api/v1/api-keys/${encodeURIComponent(k.id)}`).catch((e) => showError(document.getElementById("key-error"), e));
              keys();
            } }, t("settings.revoke")))
        : el("li", { class: "empty" }, t("settings.no_keys")),
    ),
  );
}

async function hooks() {
  const list = document.getElementById("hook-list");
  const { webhooks } = await api("GET", "/api/v1/webhooks");
  const active = webhooks.filter((w) => w.active !== false);
  list.replaceChildren(
    ...(active.length ? active : [null]).map((w) =>
      w
        ? el("li", {}, el("code", {}, w.url), w.created_unix_ms ? el("time", {}, formatTime(w.created_unix_ms)) : null,
            el("button", { type: "button", class: "danger small", onclick: async () => {
              await api("DELETE", `/api/v1/webhooks/${encodeURIComponent(w.id)}`).catch((e) => showError(document.getElementById("hook-error"), e));
              hooks();
            } }, t("settings.disable")))
        : el("li", { class: "empty" }, t("settings.no_webhooks")),
    ),
  );
}

const keyForm = document.getElementById("new-key");
keyForm.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const error = document.getElementById("key-error");
  showError(error, null);
  if (!valid(keyForm)) return;
  try {
    const k = await api("POST", "/api/v1/api-keys", { name: document.getElementById("key-name").value.trim() });
    document.getElementById("key-value").textContent = k.key;
    document.getElementById("key-secret").hidden = false;
    keyForm.reset();
    keys();
  } catch (e) {
    showError(error, e);
  }
});

const hookForm = document.getElementById("new-hook");
hookForm.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const error = document.getElementById("hook-error");
  showError(error, null);
  if (!valid(hookForm)) return;
  try {
    const w = await api("POST", "/api/v1/webhooks", { url: document.getElementById("hook-url").value.trim() });
    document.getElementById("hook-value").textContent = w.secret || "";
    document.getElementById("hook-secret").hidden = !w.secret;
    hookForm.reset();
    hooks();
  } catch (e) {
    showError(error, e);
  }
});

document.getElementById("totp-setup")?.addEventListener("click", async (ev) => {
  const error = document.getElementById("totp-error");
  showError(error, null);
  try {
    const s = await api("POST", "/api/v1/auth/totp/setup");
    document.getElementById("totp-secret").textContent = s.secret;
    document.getElementById("totp-url").textContent = s.otpauth_url;
    document.getElementById("totp-enable").hidden = false;
    ev.target.hidden = true;
    document.getElementById("totp-code").focus();
  } catch (e) {
    showError(error, e);
  }
});

document.getElementById("totp-enable")?.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const error = document.getElementById("totp-error");
  showError(error, null);
  if (!valid(ev.target)) return;
  try {
    const r = await api("POST", "/api/v1/auth/totp/enable", { code: document.getElementById("totp-code").value.trim() });
    ev.target.hidden = true;
    document.getElementById("totp-state").textContent = t("settings.totp_on");
    document.getElementById("recovery-codes").replaceChildren(...r.recovery_codes.map((c) => el("li", {}, el("code", {}, c))));
    document.getElementById("recovery").hidden = false;
  } catch (e) {
    showError(error, e);
  }
});

keys().catch((e) => showError(document.getElementById("key-error"), e));
hooks().catch((e) => showError(document.getElementById("hook-error"), e));
