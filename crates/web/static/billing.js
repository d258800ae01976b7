// Billing: the plan in force and its usage (rendered by the server), and the ways to change it.
// Payment details are never entered here: every button leads to the provider's own hosted page
// (Stripe Checkout, Stripe's billing portal, PayPal's approval page).
import { api, showError, fillTimes, openDialog } from "./common.js";

fillTimes();
const error = document.getElementById("billing-error");

for (const button of document.querySelectorAll("button[data-plan]")) {
  button.addEventListener("click", async () => {
    showError(error, null);
    button.disabled = true;
    try {
      const page = await api("POST", "/api/v1/billing/checkout", { plan: button.dataset.plan, provider: button.dataset.provider });
      location.assign(page.url);
    } catch (e) {
      showError(error, e);
      button.disabled = false;
    }
  });
}

document.getElementById("portal")?.addEventListener("click", async () => {
  showError(error, null);
  try {
    location.assign((await api("POST", "/api/v1/billing/portal")).url);
  } catch (e) {
    showError(error, e);
  }
});

const dialog = document.getElementById("cancel-dialog");
document.getElementById("cancel-open")?.addEventListener("click", () =>
  openDialog(dialog, document.getElementById("cancel-close")),
);
document.getElementById("cancel-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  try {
    await api("POST", "/api/v1/billing/cancel");
    dialog.close();
    location.reload();
  } catch (e) {
    showError(document.getElementById("cancel-error"), e);
  }
});
