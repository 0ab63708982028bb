// Ask Kap: send the question to the ask API and show the answer with clickable, numbered citations.
import { api, showError, toast } from "/static/kap.js";

function citationLink(citation) {
  const a = document.createElement("a");
  const project = document.getElementById("ask-form")?.dataset.project;
  a.href = citation.link || `/p/${project}/documents/${citation.artifact_id}${citation.page ? `#page=${citation.page}` : ""}`;
  a.className = "citation-link";
  const where = citation.locator || (citation.page ? `page ${citation.page}` : "");
  a.textContent = where ? `${citation.name}, ${where}` : citation.name;
  return a;
}

function renderAnswer(box, text, citations) {
  // The answer cites sources as [n]; each marker becomes a link to that source.
  const byNumber = new Map(citations.map((c) => [String(c.n), c]));
  box.replaceChildren();
  for (const paragraph of text.split(/\n{2,}/)) {
    const p = document.createElement("p");
    for (const part of paragraph.split(/(\[\d+\])/)) {
      const n = part.match(/^\[(\d+)\]$/)?.[1];
      const citation = n && byNumber.get(n);
      if (citation) {
        const a = document.createElement("a");
        a.href = `#cite-${n}`; a.textContent = `[${n}]`; a.className = "cite-marker";
        a.setAttribute("aria-label", `Source ${n}: ${citation.name}`);
        p.append(a);
      } else p.append(document.createTextNode(part));
    }
    box.append(p);
  }
}

function renderCitations(list, citations) {
  list.replaceChildren();
  for (const c of citations) {
    const li = document.createElement("li");
    li.id = `cite-${c.n}`;
    li.value = c.n;
    li.append(citationLink(c));
    if (c.quote) {
      const q = document.createElement("blockquote");
      q.textContent = c.quote;
      li.append(q);
    }
    list.append(li);
  }
}

function show(data) {
  document.getElementById("ask-result").hidden = false;
  const citations = data.citations || [];
  renderAnswer(document.getElementById("ask-answer"), data.answer || "", citations);
  renderCitations(document.getElementById("ask-citations"), citations);
  document.getElementById("ask-sources-title").hidden = !citations.length;
  document.getElementById("ask-notes").textContent = (data.notes || []).join(" ");
}

const form = document.getElementById("ask-form");
form?.addEventListener("submit", async (event) => {
  event.preventDefault();
  const question = form.elements.question.value.trim();
  if (!question) return;
  const button = form.querySelector("button[type=submit]");
  const busy = document.getElementById("ask-busy");
  button.disabled = true; busy.hidden = false;
  try {
    show(await api("POST", `/api/ask?project_id=${form.dataset.project}`, { question }));
    document.getElementById("ask-answer").focus?.();
  } catch (error) {
    showError(error);
  } finally {
    button.disabled = false; busy.hidden = true;
  }
});
form?.elements.question.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) form.requestSubmit();
});
