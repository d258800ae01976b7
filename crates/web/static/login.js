// Sign-in: password, then the two-factor code when the account asks for one.
import { api, showError, valid, formValues } from "./common.js";

const form = document.getElementById("login");
const error = document.getElementById("error");
const totpField = document.getElementById("totp-field");

form.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  showError(error, null);
  if (!valid(form)) return;
  const v = formValues(form);
  const body = { email: v.email, password: v.password };
  if (!totpField.hidden && v.totp) body.totp = v.totp.trim();
  try {
    await api("POST", "/api/v1/auth/login", body);
    location.assign("/app");
  } catch (e) {
    if (e.code === "totp_required") {
      totpField.hidden = false;
      document.getElementById("totp").focus();
    }
    showError(error, e);
  }
});
