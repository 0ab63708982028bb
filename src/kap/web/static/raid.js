// RAID: inline edits in the log, accept and dismiss in the review queue.
import { api, toast } from "/static/kap.js";

function projectQuery() {
  const form = document.querySelector("form[data-api], form[data-api-q]");
  if (form?.dataset.apiQ) return form.dataset.apiQ;
  const url = form?.dataset.api?.split(" ")[1] || "";
  return url.includes("?") ? url.split("?")[1] : "";
}

for (const field of document.querySelectorAll("[data-raid-field]")) {
  field.addEventListener("change", async () => {
    const row = field.closest("[data-item]");
    const value = field.value.trim();
    const body = { [field.dataset.raidField]: value === "" ? null : value };
    try {
      await api("PATCH", `/api/raid/${row.dataset.item}?${projectQuery()}`, body);
      toast("Saved", "ok");
    } catch (error) { toast(error.message, "error"); }
  });
}

function reviewBody(form) {
  const body = {};
  for (const [key, value] of new FormData(form).entries()) body[key] = value === "" ? null : value;
  if (!body.title) delete body.title;
  return body;
}

function settle(card, message) {
  card.remove();
  toast(message, "ok");
  if (!document.querySelector(".suggestion")) location.reload();
}

for (const form of document.querySelectorAll("form[data-raid-review]")) {
  const card = form.closest("[data-item]");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api("POST", `/api/raid/${form.dataset.raidReview}/accept?${form.dataset.apiQ}`, reviewBody(form));
      settle(card, "Accepted into the RAID log");
    } catch (error) { toast(error.message, "error"); }
  });
  form.querySelector("[data-dismiss]")?.addEventListener("click", async () => {
    try {
      await api("POST", `/api/raid/${form.dataset.raidReview}/dismiss?${form.dataset.apiQ}`);
      settle(card, "Dismissed");
    } catch (error) { toast(error.message, "error"); }
  });
}
