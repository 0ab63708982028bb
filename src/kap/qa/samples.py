"""Sample project files the QA seeder builds itself, in the formats Kap ingests.

Nothing here is read from disk: each file is generated, so any deployment can seed
a project without shipping a corpus. The facts are those a reviewer can check with
Ask Kap and search ("Contoso Payroll", "R-07", "86,500").
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime

from docx import Document
from openpyxl import Workbook
from PIL import Image, ImageDraw, ImageFont


@dataclass(frozen=True)
class Sample:
    name: str
    data: bytes
    needs_ocr: bool = False


SOW_LINES = [
    "Statement of Work SOW-QA-001 - Contoso Payroll Modernisation",
    "Client: Contoso Ltd. Executive sponsor: Maria Okafor.",
    "The fixed fee for the engagement is USD 480,000, invoiced monthly.",
    "The planned go-live date is March 2, 2027.",
    "Payroll parallel runs: two cycles before go-live.",
]


def _pdf_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def pdf_file(objects: list[bytes]) -> bytes:
    """A PDF file of numbered `objects` (the first is the catalog), with its cross-reference table."""
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


def text_pdf(lines: list[str]) -> bytes:
    """A one-page PDF with a real text layer (Helvetica), written by hand."""
    content = "BT /F1 12 Tf 72 720 Td 16 TL " + " ".join(f"({_pdf_escape(line)}) Tj T*" for line in lines) + " ET"
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        "/Resources << /Font << /F1 5 0 R >> >> >>",
        f"<< /Length {len(content)} >>\nstream\n{content}\nendstream",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    return pdf_file([body.encode("latin-1") for body in objects])


def minutes_docx() -> bytes:
    doc = Document()
    doc.add_heading("Kickoff minutes - Contoso Payroll", level=1)
    doc.add_paragraph("Attendees: Maria Okafor (Contoso), Sam Patel (Kap consulting).")
    doc.add_paragraph("Decision: the weekly status meeting is held every Thursday at 14:00 UTC.")
    table = doc.add_table(rows=2, cols=2)
    table.cell(0, 0).text = "Action"
    table.cell(0, 1).text = "Owner"
    table.cell(1, 0).text = "Confirm pay calendar for 2027"
    table.cell(1, 1).text = "Maria Okafor"
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()


def raid_xlsx() -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "RAID"
    sheet.append(["ID", "Type", "Description", "Owner", "Status"])
    sheet.append(["R-07", "Risk", "Legacy payroll export lacks tax codes", "Sam Patel", "Open"])
    sheet.append(["I-02", "Issue", "Test tenant refresh delayed two weeks", "Maria Okafor", "Mitigating"])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def status_eml() -> bytes:
    msg = EmailMessage()
    msg["From"] = "Sam Patel <sam.patel@example.com>"
    msg["To"] = "Maria Okafor <maria.okafor@example.com>"
    msg["Subject"] = "Contoso Payroll - weekly status week 3"
    msg["Date"] = format_datetime(datetime(2026, 11, 20, 9, 0, tzinfo=UTC))
    msg.set_content("Status: amber. Data conversion mock 1 loaded 12,400 employee records.\n"
                    "Next milestone: payroll parallel run 1 starts January 11, 2027.\n")
    return bytes(msg)


def scanned_page() -> bytes:
    """A signed change request as an image-only PDF: no text layer, so it goes to the OCR lane."""
    image = Image.new("L", (1240, 1754), color=255)
    draw = ImageDraw.Draw(image)
    try:
        font = ImageFont.load_default(size=40)
    except TypeError:  # Pillow < 10.1 has no sized default font
        font = ImageFont.load_default()
    lines = ["CHANGE REQUEST CR-QA-01", "Contoso Payroll Modernisation", "Additional interface: benefits carrier",
             "Approved amount: USD 86,500", "Signed: Maria Okafor"]
    for n, line in enumerate(lines):
        draw.text((120, 200 + n * 90), line, fill=0, font=font)
    out = io.BytesIO()
    image.save(out, format="PDF", resolution=150)
    return out.getvalue()


def samples() -> list[Sample]:
    """Every sample file, freshly built."""
    return [
        Sample("SOW-QA-001 Contoso Payroll.pdf", text_pdf(SOW_LINES)),
        Sample("Kickoff minutes Contoso.docx", minutes_docx()),
        Sample("RAID log Contoso.xlsx", raid_xlsx()),
        Sample("Weekly status week 3.eml", status_eml()),
        Sample("CR-QA-01 signed scan.pdf", scanned_page(), needs_ocr=True),
    ]
