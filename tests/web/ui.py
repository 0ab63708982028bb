"""What a person sees, measured in the browser: contrast, overflow, names instead of ids, failures."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from kap.core.permissions import ACTIONS

UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)

# WCAG contrast of an element's text against its effective background: walk up the ancestors,
# compositing translucent backgrounds until an opaque one (white at the root).
CONTRAST_JS = """(el) => {
  const parse = (c) => {
    const p = c.match(/[\\d.]+/g).map(Number);
    return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 };
  };
  const channel = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  const lum = (c) => 0.2126 * channel(c.r) + 0.7152 * channel(c.g) + 0.0722 * channel(c.b);
  const over = (top, base) => ({ r: top.r * top.a + base.r * (1 - top.a), g: top.g * top.a + base.g * (1 - top.a),
                                 b: top.b * top.a + base.b * (1 - top.a) });
  const layers = [];
  for (let node = el; node && node.nodeType === 1; node = node.parentElement) {
    const bg = parse(getComputedStyle(node).backgroundColor);
    if (bg.a > 0) { layers.push(bg); if (bg.a >= 1) break; }
  }
  let base = { r: 255, g: 255, b: 255 };
  for (const layer of layers.reverse()) base = over(layer, base);
  const fg = over(parse(getComputedStyle(el).color), base);
  const a = lum(fg), b = lum(base);
  return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
}"""


def contrast(locator: Any) -> float:
    """The lowest text contrast of an element and the text-bearing elements inside it."""
    ratios = [float(locator.evaluate(CONTRAST_JS))]
    inner = locator.locator("span, a, strong")
    for i in range(inner.count()):
        ratios.append(float(inner.nth(i).evaluate(CONTRAST_JS)))
    return min(ratios)


def assert_readable_alert(page: Any, selector: str, text: str) -> Any:
    """The alert is on screen, says `text`, and its text contrasts >= 4.5:1 with its background."""
    alert = page.locator(selector, has_text=text).last
    alert.wait_for(state="visible", timeout=20_000)
    box = alert.bounding_box()
    viewport = page.viewport_size
    assert box, box
    assert box["width"] > 40, box
    assert box["height"] > 10, box
    assert box["x"] >= 0, (box, viewport)
    assert box["x"] + box["width"] <= viewport["width"] + 1, (box, viewport)
    ratio = contrast(alert)
    assert ratio >= 4.5, f"alert {text!r}: contrast {ratio:.2f}"
    shown = alert.inner_text()
    assert not [a for a in ACTIONS if a in shown], shown  # no internal permission names
    return alert


@dataclass
class Watch:
    """Console errors and failed requests of one page, kept while it is open."""

    errors: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    allowed: set[int] = field(default_factory=set)

    def attach(self, page: Any) -> None:
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("requestfailed", self._failed)
        page.on("response", lambda r: self.failed.append(f"{r.status} {r.url}")
                if r.status >= 400 and r.status not in self.allowed else None)

    def _failed(self, request: Any) -> None:
        # The readiness poll (every ten seconds) and the tab's icon load in the background; the browser
        # cancels one in flight when the person moves on. Any other failed request counts.
        if request.failure == "net::ERR_ABORTED" and request.url.endswith(BACKGROUND):
            return
        self.failed.append(f"{request.method} {request.url} {request.failure}")

    def take(self) -> tuple[list[str], list[str]]:
        errors, failed = self.errors[:], self.failed[:]
        self.errors.clear()
        self.failed.clear()
        return errors, failed


BACKGROUND = ("/readyz", "/static/favicon.svg")


def page_facts(page: Any) -> dict[str, Any]:
    """Overflow and visible text of the page as rendered."""
    return page.evaluate("""() => ({ scroll: document.documentElement.scrollWidth, inner: window.innerWidth,
                                     text: document.body.innerText })""")


def cut_off(page: Any, selector: str) -> list[str]:
    """The text of the links and buttons inside `selector` that a person cannot see whole: past the
    viewport's edge, or hidden behind a scrolling frame (a table wider than its wrapper)."""
    return page.evaluate("""(selector) => {
      const cut = [];
      for (const root of document.querySelectorAll(selector)) {
        for (const el of root.querySelectorAll("a, button")) {
          const box = el.getBoundingClientRect();
          let clipped = box.left < 0 || box.right > window.innerWidth + 1;
          for (let node = el.parentElement; node && !clipped; node = node.parentElement) {
            const style = getComputedStyle(node);
            if (style.overflowX === "visible") continue;
            const frame = node.getBoundingClientRect();
            clipped = box.left < frame.left - 1 || box.right > frame.right + 1;
          }
          if (clipped) cut.push(el.innerText.trim() || el.getAttribute("aria-label") || el.tagName);
        }
      }
      return cut;
    }""", selector)


@dataclass
class Seeded:
    url: str
    org: uuid.UUID
    project: uuid.UUID
    other_project: uuid.UUID
    users: dict[str, uuid.UUID]
    documents: dict[str, str]

    def headers(self, who: str = "owner") -> dict[str, str]:
        return {"X-Dev-User": str(self.users[who]), "X-Dev-Org": str(self.org)}


def seed(url: str, fixtures: Any) -> Seeded:
    """A project with one member per role, three documents, the standard stages and a sign-off request."""
    org, owner = uuid.uuid4(), uuid.uuid4()
    users = {"owner": owner}
    h = {"X-Dev-User": str(owner), "X-Dev-Org": str(org)}
    with httpx.Client(base_url=url, timeout=120) as c:
        project = c.post("/api/projects", json={"name": "Northwind Workday rollout"}, headers=h).json()["id"]
        other = c.post("/api/projects", json={"name": "Contoso payroll"}, headers=h).json()["id"]
        for role in ("admin", "pm", "lead", "member"):
            made = c.post(f"/api/projects/{project}/members", headers=h,
                          json={"email": f"{role}.person@consult.example", "role": role})
            assert made.status_code == 201, made.text
            users[role] = uuid.UUID(made.json()["user_id"])
        q = {"project_id": project}
        docs = {}
        for name in ("SOW-2026-014 Northwind Workday.pdf", "Test strategy.txt", "CR-004 signed scan.pdf"):
            with open(fixtures / "northwind" / name, "rb") as f:
                sent = c.post("/api/ingest-sync", params=q, headers=h, files={"file": (name, f.read())})
            assert sent.status_code == 200, sent.text
            docs[name] = sent.json()["document"]["id"]
        with open(fixtures / "northwind" / "Test strategy.txt", "rb") as f:
            c.post("/api/ingest-sync", params={"project_id": other}, headers=h,
                   files={"file": ("Contoso test plan.txt", f.read() + b"\nContoso.")})
        c.post("/api/stages/apply-template", params=q, headers=h)
        stages = c.get("/api/stages", params=q, headers=h).json()["stages"]
        c.post(f"/api/stages/{stages[0]['id']}/signoff-requests", params=q, headers=h,
               json={"email_to": "dana.whitfield@northwind.example", "name": "Dana Whitfield"})
    users["outsider"] = uuid.uuid4()
    return Seeded(url, org, uuid.UUID(project), uuid.UUID(other), users, docs)
