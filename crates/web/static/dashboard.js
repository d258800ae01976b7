// The dashboard is rendered by the server (filters are a plain GET form); this module only adds
// the shared behaviour: sign-out and local times.
import "./common.js";

document.getElementById("status")?.addEventListener("change", (ev) => ev.target.form.requestSubmit());
