// Progressive enhancement for Kap's pages: API forms, toasts, the database banner, deep links.

const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content || "";

export async function api(method, url, body) {
  const init = { method, headers: { "X-CSRF-Token": csrf() }, credentials: "same-origin" };
  if (body instanceof FormData) init.body = body;
  else if (body !== undefined) { init.headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
  const response = await fetch(url, init);
  let data = {};
  try { data = await response.json(); } catch { data = {}; }
  if (response.status === 503 && data?.error?.code === "db_not_ready") showBanner(true);
  if (!response.ok) {
    const message = data?.error?.message || `Request failed (${response.status})`;
    throw Object.assign(new Error(message), { status: response.status, data });
  }
  return data;
}

export function toast(message, kind = "info", link) {
  const box = document.createElement("div");
  box.className = `toast ${kind}`;
  box.setAttribute("role", kind === "error" ? "alert" : "status");
  box.textContent = message;
  if (link) {
    const a = document.createElement("a");
    a.href = link.href; a.textContent = ` ${link.text}`;
    box.append(" ", a);
  }
  document.getElementById("toasts")?.append(box);
  setTimeout(() => box.remove(), kind === "error" ? 9000 : 6000);
  return box;
}

function showBanner(down) {
  const banner = document.getElementById("db-banner");
  if (banner) banner.hidden = !down;
}

async function pollReady() {
  try {
    const response = await fetch("/readyz", { cache: "no-store" });
    const data = await response.json();
    const wasDown = !document.getElementById("db-banner")?.hidden;
    const down = !(data?.checks?.database?.ok);
    showBanner(down);
    if (wasDown && !down && document.title.startsWith("Not ready")) location.reload();
  } catch { showBanner(true); }
}

function formBody(form) {
  const body = {};
  for (const [key, value] of new FormData(form).entries()) {
    if (value === "" ) continue;
    const field = form.elements[key];
    if (field?.type === "number") body[key] = Number(value);
    else if (field?.type === "checkbox") body[key] = true;
    else body[key] = value;
  }
  for (const box of form.querySelectorAll('input[type="checkbox"]')) if (!box.checked) body[box.name] = false;
  return body;
}

function wireForms(root = document) {
  for (const form of root.querySelectorAll("form[data-api]")) {
    if (form.dataset.wired) continue;
    form.dataset.wired = "1";
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (form.dataset.confirm && !confirm(form.dataset.confirm)) return;
      const [method, url] = form.dataset.api.split(" ");
      const button = form.querySelector("button[type=submit]");
      if (button) button.disabled = true;
      try {
        const data = await api(method, url, method === "DELETE" ? undefined : formBody(form));
        form.dispatchEvent(new CustomEvent("kap:done", { detail: data, bubbles: true }));
        if (form.dataset.then === "open-project" && data.id) location.href = `/projects/${data.id}/open`;
        else if (form.dataset.then !== "stay") { toast(form.dataset.ok || "Saved", "ok"); setTimeout(() => location.reload(), 400); }
      } catch (error) {
        toast(error.message, "error");
      } finally {
        if (button) button.disabled = false;
      }
    });
    for (const select of form.querySelectorAll("[data-autosubmit]")) {
      select.addEventListener("change", () => form.requestSubmit());
    }
  }
}

export function highlightFromHash() {
  const match = location.hash.match(/^#artifact=([0-9a-f-]{36})$/i);
  if (!match) return;
  const row = document.getElementById(`artifact-${match[1]}`);
  if (!row) return;
  row.classList.add("highlight");
  row.scrollIntoView({ block: "center" });
  row.setAttribute("tabindex", "-1");
  row.focus({ preventScroll: true });
}

document.addEventListener("DOMContentLoaded", () => {
  wireForms();
  highlightFromHash();
  window.addEventListener("hashchange", highlightFromHash);
  pollReady();
  setInterval(pollReady, 10000);
});

window.kap = { api, toast, wireForms, highlightFromHash };
