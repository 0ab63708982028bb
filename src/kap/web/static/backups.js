// Backups: store a file from a backup back into the project, and restore a backup into a new project.
import { api, showError, toast } from "/static/kap.js";

const box = document.getElementById("backup-contents");

async function reingest(button) {
  const params = new URLSearchParams({ project_id: box.dataset.project, backup_key: box.dataset.key,
                                       artifact_name: button.dataset.reingest });
  button.disabled = true;
  try {
    const data = await api("POST", `/api/backups/store-and-reingest?${params}`);
    const what = data.mode === "new_version" ? `stored as version ${data.version}` : "stored as a new document";
    toast(`Restored from the backup: ${what} (${data.status})`, "ok", { href: data.link, text: "View in Documents" });
  } catch (error) {
    showError(error);
  } finally {
    button.disabled = false;
  }
}

async function restore(form) {
  const typed = form.elements.confirm.value.trim();
  if (typed !== form.dataset.projectName) {
    toast("Type the project name exactly to confirm", "error");
    form.elements.confirm.focus();
    return;
  }
  const params = new URLSearchParams({ project_id: box.dataset.project, backup_key: box.dataset.key });
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    const target = form.elements.target.value;
    if (target === "replace" && !confirm(`Replace everything in ${form.dataset.projectName} with this backup?`)) return;
    const data = await api("POST", `/api/backups/restore?${params}`, { target, confirm: typed });
    if (target === "replace") {
      toast(`Restored over this project (${data.files} files)`, "ok", { href: `/p/${data.project_id}/dashboard`, text: "Open the dashboard" });
      setTimeout(() => location.reload(), 1200);
    } else {
      toast(`Restored into a new project (${data.files} files)`, "ok", { href: `/p/${data.project_id}/dashboard`, text: "Open it" });
    }
    form.reset();
  } catch (error) {
    showError(error);
  } finally {
    button.disabled = false;
  }
}

box?.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-reingest]");
  if (button) reingest(button);
});
document.getElementById("restore-form")?.addEventListener("submit", (event) => {
  event.preventDefault();
  restore(event.target);
});
