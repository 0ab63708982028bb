// Settings: the caller's own subscriptions and the project's external recipients (one PUT each).
import { api, showError, toast } from "/static/kap.js";

const section = document.getElementById("subscriptions");
const url = () => `/api/subscriptions?project_id=${section.dataset.project}`;

function externals(except) {
  return [...section.querySelectorAll("#external-recipients tr[data-email]")]
    .filter((row) => row !== except)
    .map((row) => ({ email: row.dataset.email, name: row.dataset.name || null,
                     categories: row.dataset.categories ? row.dataset.categories.split(",") : [] }));
}

async function save(body, message) {
  try {
    await api("PUT", url(), body);
    toast(message, "ok");
    setTimeout(() => location.reload(), 400);
  } catch (error) {
    showError(error);
  }
}

section?.querySelector("#subs-mine")?.addEventListener("submit", (event) => {
  event.preventDefault();
  const mine = {};
  for (const box of event.target.querySelectorAll("input[type=checkbox]")) mine[box.name] = box.checked;
  save({ mine }, "Subscriptions saved");
});

section?.querySelector("#add-external")?.addEventListener("submit", (event) => {
  event.preventDefault();
  const form = event.target;
  const categories = ["digest", "signoff"].filter((c) => form.elements[c].checked);
  if (!categories.length) { toast("Pick at least one kind of email", "error"); return; }
  const entry = { email: form.elements.email.value.trim(), name: form.elements.name.value.trim() || null, categories };
  save({ external: [...externals().filter((e) => e.email !== entry.email.toLowerCase()), entry] }, "Recipient added");
});

section?.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-remove-external]");
  if (button) save({ external: externals(button.closest("tr")) }, "Recipient removed");
});
