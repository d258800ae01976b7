// Sign-up: the account and its organisation, then straight into the workspace.
import { api, showError, valid, formValues } from "./common.js";

const form = document.getElementById("signup");
const error = document.getElementById("error");

form.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  showError(error, null);
  if (!valid(form)) return;
  const v = formValues(form);
  try {
    await api("POST", "/api/v1/auth/signup", { name: v.name, email: v.email, password: v.password });
    await api("POST", "/api/v1/auth/login", { email: v.email, password: v.password });
    location.assign("/app");
  } catch (e) {
    showError(error, e);
  }
});
