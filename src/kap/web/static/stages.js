// Stages: after a sign-off request is sent, show where it went and the link (for a copy by hand).
import { api, toast } from "/static/kap.js";

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

// Documents for the signer: the checked boxes are the whole list (PUT replaces it).
for (const form of document.querySelectorAll("form[data-documents]")) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const [method, url] = form.dataset.documents.split(" ");
    const ids = [...form.querySelectorAll('input[name="artifact_ids"]:checked')].map((box) => box.value);
    const button = form.querySelector("button[type=submit]");
    if (button) button.disabled = true;
    try {
      const stage = await api(method, url, { artifact_ids: ids });
      toast(stage.changed_after_signoff ? "Documents saved: this stage now needs a new sign-off" : "Documents saved", "ok");
      setTimeout(() => location.reload(), 400);
    } catch (error) {
      toast(error.message, "error");
    } finally {
      if (button) button.disabled = false;
    }
  });
}
