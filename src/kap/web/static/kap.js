// Progressive enhancement for Kap's pages: API forms, alerts, the database banner, deep links, the menu.

const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content || "";

// What people read when a request fails: what happened and what to do, never an internal code.
const BY_CODE = {
  empty_file: () => "The file is empty. Pick a file that has content and upload it again.",
  unsupported_type: (m) => `${sentence(m)} Kap takes PDF, Word, Excel, PowerPoint, email, text and image files.`,
  last_owner: () => "You are the last owner, so you cannot leave or step down. Make someone else an owner first.",
  rate_limited: () => "Too many requests in a short time. Wait a minute, then try again.",
  db_not_ready: () => "Kap's database is not reachable just now. Your work is kept; try again in a moment.",
  invalid_json: () => "Kap could not read what was sent. Reload the page and try again.",
  payload_too_large: () => "The file is too large for Kap. Split it or ask an admin to raise the limit.",
};

function sentence(text) {
  const t = String(text || "").trim();
  if (!t) return "";
  const s = t[0].toUpperCase() + t.slice(1);
  return /[.!?]$/.test(s) ? s : `${s}.`;
}

function fieldLabel(form, field) {
  const input = form?.elements?.[field];
  const label = input?.id && form.querySelector(`label[for="${input.id}"]`);
  return label ? label.textContent.trim() : field.replaceAll("_", " ");
}

export function humanMessage(status, data, form) {
  const error = data?.error || {};
  const code = error.code || "";
  if (status === 401) return "Your session has expired. Sign in again to continue.";
  if (status === 404 && /^project not found/.test(error.message || "")) {
    return "This project does not exist, or you are not a member of it.";
  }
  if (code === "validation_error" && error.details?.fields?.length) {
    return error.details.fields.map((f) => {
      const text = sentence(f.message.replace(/^Value error, /, ""));
      return f.field ? `${fieldLabel(form, f.field)}: ${text}` : text;
    }).join(" ");
  }
  if (BY_CODE[code]) return BY_CODE[code](error.message);
  if (status >= 500) {
    return `Something went wrong on Kap's side. Try again; if it keeps failing, give an admin this reference: ${data?.request_id || "none"}.`;
  }
  return sentence(error.message) || `The request failed (status ${status}). Try again.`;
}

export async function api(method, url, body, form) {
  const init = { method, headers: { "X-CSRF-Token": csrf() }, credentials: "same-origin" };
  if (body instanceof FormData) init.body = body;
  else if (body !== undefined) { init.headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
  let response;
  try { response = await fetch(url, init); }
  catch { throw Object.assign(new Error("Kap could not be reached. Check your connection and try again."), { status: 0 }); }
  let data = {};
  try { data = await response.json(); } catch { data = {}; }
  if (response.status === 503 && data?.error?.code === "db_not_ready") showBanner(true);
  if (!response.ok) {
    throw Object.assign(new Error(humanMessage(response.status, data, form)), { status: response.status, data });
  }
  return data;
}

export function signInLink() {
  return { href: `/login?next=${encodeURIComponent(location.pathname + location.search)}`, text: "Sign in again" };
}

// The one alert component: toasts and inline alerts share `.alert` and its kinds.
export function toast(message, kind = "info", link) {
  const box = document.createElement("div");
  box.className = `alert alert-${kind} toast`;
  box.setAttribute("role", kind === "error" ? "alert" : "status");
  const text = document.createElement("span");
  text.textContent = message;
  if (link) {
    const a = document.createElement("a");
    a.href = link.href; a.textContent = link.text;
    text.append(" ", a);
  }
  box.append(text);
  const close = document.createElement("button");
  close.type = "button"; close.className = "alert-close"; close.textContent = "×";
  close.setAttribute("aria-label", "Dismiss");
  close.addEventListener("click", () => box.remove());
  box.append(close);
  document.getElementById("toasts")?.append(box);
  // Errors stay until dismissed: a person must be able to read them.
  if (kind !== "error") setTimeout(() => box.remove(), 8000);
  return box;
}

export function showError(error) {
  return toast(error.message, "error", error.status === 401 ? signInLink() : error.link);
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
        const files = form.getAttribute("enctype") === "multipart/form-data";
        const body = method === "DELETE" ? undefined : files ? new FormData(form) : formBody(form);
        const data = await api(method, url, body, form);
        form.dispatchEvent(new CustomEvent("kap:done", { detail: data, bubbles: true }));
        if (form.dataset.then === "open-project" && data.id) location.href = `/p/${data.id}/dashboard`;
        else if (form.dataset.then !== "stay") { toast(form.dataset.ok || "Saved", "ok"); setTimeout(() => location.reload(), 400); }
      } catch (error) {
        showError(error);
      } finally {
        if (button) button.disabled = false;
      }
    });
    for (const select of form.querySelectorAll("[data-autosubmit]")) {
      select.addEventListener("change", () => form.requestSubmit());
    }
  }
}

function focusTarget(element) {
  element.classList.add("highlight");
  element.scrollIntoView({ block: "start" });
  element.setAttribute("tabindex", "-1");
  element.focus({ preventScroll: true });
}

// Deep links: `#artifact=<id>` marks a document row, `#page=N` a page of a document, `#stage=<id>` a stage.
export function highlightFromHash() {
  const match = location.hash.match(/^#(artifact|page|stage)=([0-9a-z-]+)$/i);
  if (!match) return;
  const ids = { artifact: `artifact-${match[2]}`, page: `page-${match[2]}`, stage: `stage-${match[2]}` };
  for (const old of document.querySelectorAll(".highlight")) old.classList.remove("highlight");
  const target = document.getElementById(ids[match[1].toLowerCase()]);
  if (target) focusTarget(target);
}

function wireMenu() {
  const button = document.querySelector(".menu-toggle");
  const top = document.getElementById("top");
  button?.addEventListener("click", () => {
    const open = top.classList.toggle("open");
    button.setAttribute("aria-expanded", String(open));
  });
}

document.addEventListener("DOMContentLoaded", () => {
  wireForms();
  wireMenu();
  highlightFromHash();
  window.addEventListener("hashchange", highlightFromHash);
  pollReady();
  setInterval(pollReady, 10000);
});

window.kap = { api, toast, showError, wireForms, highlightFromHash };
