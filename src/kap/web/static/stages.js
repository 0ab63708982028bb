// Stages: after a sign-off request is sent, show where it went and the link (for a copy by hand).
import { toast } from "/static/kap.js";

document.addEventListener("kap:done", (event) => {
  const form = event.target.closest("form[data-signoff]");
  if (!form) return;
  const data = event.detail || {};
  const status = data.email?.status || "scheduled";
  toast(`Sign-off request sent to ${data.email?.to || form.elements.email_to.value} (email ${status})`, "ok");
  const box = document.querySelector(`[data-link-for="${form.dataset.signoff}"]`);
  if (box && data.token_link) {
    box.hidden = false;
    box.textContent = "Link (works once): ";
    const a = document.createElement("a");
    a.href = data.token_link; a.textContent = data.token_link; a.className = "signoff-url";
    a.target = "_blank"; a.rel = "noopener noreferrer";
    box.append(a);
  }
  form.reset();
});
