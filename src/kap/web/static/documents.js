// Documents: upload with progress, status toasts while a document is extracted, the OCR lane.
import { api, humanMessage, signInLink, toast } from "/static/kap.js";

const DONE = new Set(["ready", "needs_ocr", "failed"]);
const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content || "";
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const project = () => document.getElementById("main")?.dataset.project;
const viewLink = (id) => ({ href: `/p/${project()}/documents/${id}`, text: "Open the document" });

function uploadOne(projectId, file, bar, note) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `/api/ingest?project_id=${projectId}`);
    xhr.setRequestHeader("X-CSRF-Token", csrf());
    xhr.responseType = "json";
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) bar.value = Math.round((event.loaded / event.total) * 100);
    });
    xhr.addEventListener("load", () => {
      const data = xhr.response || {};
      if (xhr.status >= 200 && xhr.status < 300) { bar.value = 100; resolve(data); }
      else reject(Object.assign(new Error(humanMessage(xhr.status, data)), { status: xhr.status, data }));
    });
    xhr.addEventListener("error", () => reject(new Error("The upload was interrupted. Check your connection and try again.")));
    note.textContent = "Uploading…";
    const body = new FormData();
    body.append("file", file, file.name);
    xhr.send(body);
  });
}

export async function watch(projectId, id, name, note) {
  for (let i = 0; i < 600; i++) {
    let doc;
    try { doc = await api("GET", `/api/documents/${id}?project_id=${projectId}`); }
    catch (error) { if (error.status === 404) return null; await sleep(2000); continue; }
    if (note) note.textContent = doc.status;
    if (DONE.has(doc.status)) { announce(doc, name); return doc; }
    await sleep(i < 20 ? 500 : 1500);
  }
  toast(`${name} is still being processed`, "info", viewLink(id));
  return null;
}

function announce(doc, name) {
  if (doc.status === "ready") toast(`${name} is ready`, "ok", viewLink(doc.id));
  else if (doc.status === "needs_ocr") toast(`${name} landed in the Needs OCR lane`, "info", { href: `/p/${project()}/ocr`, text: "Open the lane" });
  else toast(`${name} failed: ${doc.status_reason || "unknown reason"}`, "error", viewLink(doc.id));
}

export async function refreshList() {
  const table = document.getElementById("doc-list");
  if (!table) return;
  const params = new URLSearchParams(location.search);
  params.set("fragment", "1");
  const response = await fetch(`/p/${project()}/documents?${params}`, { credentials: "same-origin" });
  if (!response.ok) return;
  const html = new DOMParser().parseFromString(await response.text(), "text/html");
  const fresh = html.querySelector("#doc-list tbody");
  if (fresh) table.querySelector("tbody").replaceWith(fresh);
  const count = html.getElementById("doc-count");
  if (count) document.getElementById("doc-count").replaceWith(count);
  window.kap?.wireForms(table);
  window.kap?.highlightFromHash();
}

function progressRow(file) {
  const item = document.createElement("li");
  const label = document.createElement("span");
  label.textContent = file.name;
  const bar = document.createElement("progress");
  bar.max = 100; bar.value = 0;
  bar.setAttribute("aria-label", `Upload of ${file.name}`);
  const note = document.createElement("span");
  note.className = "muted";
  item.append(label, bar, note);
  document.getElementById("uploads").append(item);
  return { item, bar, note };
}

async function uploadAndWatch(projectId, file) {
  const { item, bar, note } = progressRow(file);
  try {
    const result = await uploadOne(projectId, file, bar, note);
    note.textContent = "queued";
    toast(`${file.name} uploaded; extracting text`, "info");
    await refreshList();
    await watch(projectId, result.document.id, file.name, note);
  } catch (error) {
    // A refused file has no progress left to show: its row says so in the colours of a failed document.
    bar.remove();
    note.className = "status status-failed";
    note.textContent = "Refused";
    item.classList.add("refused");
    const link = error.data?.error?.details?.link;
    const action = error.status === 401 ? signInLink() : link ? { href: link, text: "Open the document" } : undefined;
    toast(`${file.name}: ${error.message}`, "error", action);
  }
}

function wireUpload() {
  const form = document.getElementById("upload-form");
  if (!form) return;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = form.querySelector("input[type=file]");
    const files = [...input.files];
    if (!files.length) return;
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await Promise.all(files.map((file) => uploadAndWatch(form.dataset.project, file)));
      input.value = "";
      await refreshList();
    } finally { button.disabled = false; }
  });
}

function wireOcr() {
  document.addEventListener("kap:done", async (event) => {
    const form = event.target.closest("form[data-ocr]");
    if (!form) return;
    const card = form.closest("section");
    const name = card?.querySelector("h2")?.textContent || "The document";
    toast(`OCR started for ${name}`, "info");
    const projectId = new URLSearchParams(form.dataset.api.split("?")[1]).get("project_id");
    const doc = await watch(projectId, form.dataset.ocr, name);
    if (doc && doc.status === "ready") card?.remove();
  });
}

wireUpload();
wireOcr();
