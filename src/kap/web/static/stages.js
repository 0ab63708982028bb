// Stages: after a sign-off request is sent, show where it went and the link (for a copy by hand).
import { toast } from "/static/kap.js";

document.addEventListener("kap:done", (event) => {
  const form = event.target.closest("form[data-signoff]");
  if (!form) return;
  const data = event.detail || {};
  const words = { failed: "the email could not be sent; copy the link below", bounced: "the email bounced" };
  const note = words[data.email?.status] || "the email is on its way";
  toast(`Sign-off requested from ${data.email?.to || form.elements.email_to.value}: ${note}.`, "ok");
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
