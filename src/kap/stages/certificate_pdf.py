"""The sign-off certificate as a PDF (fpdf2): the decision, the revision signed, the documents, the timeline.

The output depends only on the record, so the same decision always yields the same bytes
and the SHA-256 recorded in the audit log identifies the file a client was given.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from fpdf import FPDF
from fpdf.fonts import FontFace

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
DECISIONS = {"approved": "APPROVED", "rejected": "REJECTED"}
CHANNELS = {"external": "emailed single-use link", "internal": "recorded in Kap by a signed-in user"}
INK, MUTED, RULE = (29, 36, 51), (74, 85, 104), (200, 209, 224)


class _Pdf(FPDF):
    def __init__(self) -> None:
        super().__init__(format="A4", unit="mm")
        self.set_margins(18, 16, 18)
        self.set_auto_page_break(True, margin=16)
        regular, bold, mono = FONT_DIR / "DejaVuSans.ttf", FONT_DIR / "DejaVuSans-Bold.ttf", \
            FONT_DIR / "DejaVuSansMono.ttf"
        if regular.exists() and bold.exists() and mono.exists():
            self.add_font("body", "", str(regular))
            self.add_font("body", "B", str(bold))
            self.add_font("mono", "", str(mono))
            self.unicode = True
        else:  # the PDF core fonts: Latin-1 only
            self.unicode = False
        self.alias_nb_pages()

    def font(self, size: float, style: str = "", mono: bool = False) -> None:
        family = ("mono" if mono else "body") if self.unicode else ("Courier" if mono else "Helvetica")
        self.set_font(family, "" if mono else style, size)

    def text_of(self, value: Any) -> str:
        text = "" if value is None else str(value)
        return text if self.unicode else text.encode("latin-1", "replace").decode("latin-1")

    def footer(self) -> None:
        self.set_y(-12)
        self.font(7.5)
        self.set_text_color(*MUTED)
        self.cell(0, 5, self.text_of(f"Kap sign-off certificate · page {self.page_no()} of {{nb}}"), align="C")


def _when(value: str | datetime | None) -> str:
    if not value:
        return ""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _heading(pdf: _Pdf, text: str) -> None:
    pdf.ln(3)
    pdf.font(12, "B")
    pdf.set_text_color(*INK)
    pdf.cell(0, 7, pdf.text_of(text), new_x="LMARGIN", new_y="NEXT")
    pdf.set_draw_color(*RULE)
    pdf.line(pdf.l_margin, pdf.get_y(), pdf.w - pdf.r_margin, pdf.get_y())
    pdf.ln(2)


def _pairs(pdf: _Pdf, rows: list[tuple[str, Any]]) -> None:
    for label, value in rows:
        pdf.font(9.5, "B")
        pdf.set_text_color(*MUTED)
        pdf.cell(42, 5.5, pdf.text_of(label))
        pdf.font(9.5)
        pdf.set_text_color(*INK)
        pdf.multi_cell(0, 5.5, pdf.text_of(value) or "-", new_x="LMARGIN", new_y="NEXT")


def _table(pdf: _Pdf, header: tuple[str, ...], rows: list[tuple[str, ...]], widths: tuple[int, ...],
           mono_column: int | None = None, size: float = 8.5) -> None:
    pdf.font(size)
    pdf.set_text_color(*INK)
    head = FontFace(emphasis="BOLD", fill_color=(238, 240, 244))
    with pdf.table(col_widths=widths, headings_style=head, line_height=4.6, text_align="LEFT",
                   borders_layout="HORIZONTAL_LINES") as table:
        cells = table.row()
        for title in header:
            cells.cell(pdf.text_of(title))
        for values in rows:
            cells = table.row()
            for index, value in enumerate(values):
                style = FontFace(family="mono" if pdf.unicode else "Courier") if index == mono_column else None
                cells.cell(pdf.text_of(value), style=style)


def render_pdf(record: dict[str, Any], timeline: list[dict[str, Any]], fingerprint: str) -> bytes:
    """The certificate of one decision as PDF bytes."""
    pdf = _Pdf()
    pdf.set_title(pdf.text_of(f"Sign-off certificate: {record['stage'].get('title', '')}"))
    pdf.set_author(pdf.text_of(record.get("org") or "Kap"))
    pdf.set_creator("Kap")
    pdf.set_creation_date(datetime.fromisoformat(record["decided_at"]))
    pdf.add_page()
    pdf.font(10, "B")
    pdf.set_text_color(*MUTED)
    pdf.cell(0, 5, pdf.text_of(record.get("org") or ""), new_x="LMARGIN", new_y="NEXT")
    pdf.font(20, "B")
    pdf.set_text_color(*INK)
    pdf.cell(0, 11, "Sign-off certificate", new_x="LMARGIN", new_y="NEXT")
    pdf.font(10.5)
    pdf.multi_cell(0, 6, pdf.text_of(f"Project {record['project']} · stage {record['stage'].get('title', '')}"),
                   new_x="LMARGIN", new_y="NEXT")

    _heading(pdf, "Decision")
    _pairs(pdf, [
        ("Decision", DECISIONS.get(record["decision"], record["decision"])),
        ("Signed by", f"{record.get('signer_name') or ''} <{record.get('signer_email') or ''}>"),
        ("Decided at", _when(record["decided_at"])),
        ("Requested by", record.get("requester") or ""),
        ("How", CHANNELS.get(record.get("channel", ""), record.get("channel", ""))),
        ("Verification code", record.get("verification") or "not required"),
        ("IP address", record.get("ip") or ""),
        ("User agent", record.get("user_agent") or ""),
        ("Note", record.get("note") or ""),
    ])

    stage = record["stage"]
    revision = record.get("revision")
    _heading(pdf, f"Stage as signed{f' (revision {revision})' if revision else ''}")
    planned = f"{stage.get('planned_start') or '?'} to {stage.get('planned_end') or '?'}" \
        if stage.get("planned_start") or stage.get("planned_end") else "no dates"
    _pairs(pdf, [("Title", stage.get("title", "")), ("Planned", planned),
                 ("Summary", stage.get("summary") or "(no summary)")])

    _heading(pdf, "Documents shown to the signer")
    docs = record.get("documents") or []
    if docs:
        _table(pdf, ("Document", "Version", "SHA-256"),
               [(d["name"], str(d["version"]), d["sha256"]) for d in docs], (62, 14, 98), mono_column=2, size=8)
    else:
        _pairs(pdf, [("Documents", "none were attached")])

    _heading(pdf, "Timeline")
    _table(pdf, ("When (UTC)", "Event", "By", "IP", "User agent"),
           [(_when(e["at"]), e["action"], e.get("by") or "", e.get("ip") or "", e.get("user_agent") or "")
            for e in timeline], (32, 22, 46, 24, 50), size=7.5)

    _heading(pdf, "Fingerprint")
    pdf.font(9)
    pdf.set_text_color(*MUTED)
    pdf.multi_cell(0, 5, "SHA-256 over the canonical JSON of the decision, signer, note, time and document hashes:",
                   new_x="LMARGIN", new_y="NEXT")
    pdf.font(9, mono=True)
    pdf.set_text_color(*INK)
    pdf.multi_cell(0, 5, fingerprint, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())
