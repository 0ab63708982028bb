"""Write the binary files of the Bayline test corpus (slides, RAID workbook, charter, e-mail thread).

The text files of `tests/fixtures/bayline/` are written by hand; the Office files and the
e-mail are generated from the content below so they can be read and regenerated:

    python -m bench.ask_corpus
"""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

FOLDER = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "bayline"

SLIDES = [
    ("Steering committee 21 April 2026", ["Bayline HCM Transformation", "Status: amber"]),
    ("Overall status", ["Design is 80% complete", "Build starts 11 May 2026",
                        "Budget spent to date: £412,000 of £1,875,000", "Two open high risks"]),
    ("Decisions requested", ["Approve fortnightly pay for UK depot workers from January 2027",
                             "Approve change order CO-12 for the Dutch and Belgian warehouses",
                             "Confirm Lena Vos as payroll data owner"]),
    ("Key milestones", ["Design sign-off: 8 May 2026", "First mock conversion: 15 June 2026",
                        "System integration test: 3 August to 4 September 2026",
                        "User acceptance test: 7 September to 25 September 2026",
                        "Go-live: 5 October 2026"]),
    ("Payroll parallel runs", ["Two parallel runs: July and August payrolls",
                               "Tolerance: net pay within £1 per employee",
                               "Parallel run lead: Sunil Batra"]),
    ("Resourcing", ["Consultant team: 11 people at peak",
                    "Client team: 7 full-time, 14 part-time key users",
                    "Data migration specialist joins on 1 June 2026"]),
]

RAID = [
    ("ID", "Type", "Description", "Owner", "Due date", "Rating", "Status"),
    ("R-01", "Risk", "Works council approval in the Netherlands may delay Time Tracking", "Lena Vos",
     "2026-05-29", "High", "Closed"),
    ("R-02", "Risk", "Sage 200 data quality: 1,900 employee records lack a national insurance number",
     "Gareth Evans", "2026-06-12", "High", "Open"),
    ("R-03", "Risk", "Kronos Workforce Central support ends on 31 December 2026", "Sunil Batra",
     "2026-09-30", "Medium", "Open"),
    ("R-04", "Risk", "Key payroll analyst on maternity leave from August", "Priya Raman", "2026-07-31",
     "Medium", "Mitigating"),
    ("A-01", "Action", "Send pay frequency change letters to UK depot workers", "Hannah Okafor",
     "2026-10-01", "", "Open"),
    ("A-02", "Action", "Book the Ipswich training rooms for super user training", "Hannah Okafor",
     "2026-07-15", "", "Done"),
    ("A-03", "Action", "Obtain HSBC bank file test certificate", "Sunil Batra", "2026-08-14", "", "Open"),
    ("I-01", "Issue", "Benefex interface specification not yet received from the vendor", "Aisha Mensah",
     "2026-06-05", "High", "Open"),
    ("I-02", "Issue", "Sandbox tenant refresh failed twice in May", "Marek Nowak", "2026-05-22", "Low",
     "Resolved"),
    ("D-01", "Dependency", "Azure AD group clean-up by Bayline IT before single sign-on testing",
     "Marek Nowak", "2026-07-20", "Medium", "Open"),
]

CHARTER = [
    ("Project charter: Bayline HCM Transformation", True),
    ("Purpose", True),
    ("The project replaces Sage 200 payroll and the spreadsheet-based HR records with one cloud HR and "
     "payroll system for the United Kingdom, Ireland and the Netherlands.", False),
    ("The business case expects annual savings of £640,000 from retiring legacy licences and manual "
     "payroll checks.", False),
    ("Governance", True),
    ("The steering committee meets on the third Tuesday of every month and is chaired by Priya Raman.", False),
    ("The project board meets every Monday at 09:30 and is chaired by Gareth Evans.", False),
    ("The design authority approves every configuration decision that affects more than one country.", False),
    ("Escalations go first to the project board and then to the steering committee.", False),
    ("Roles", True),
    ("Aisha Mensah is the Consultant's project manager and owns the integrated plan.", False),
    ("Sunil Batra leads payroll and time configuration.", False),
    ("Lena Vos is the payroll data owner for the Netherlands and Ireland.", False),
    ("Marek Nowak, Bayline's IT security manager, owns identity and access.", False),
    ("Success measures", True),
    ("Payroll accuracy of at least 99.5% in the first three payrolls after go-live.", False),
    ("At least 90% of leave requests submitted through self-service within six months.", False),
    ("Time to hire a depot worker reduced from 21 days to 12 days.", False),
]

THREAD = "\n".join([
    'Hi all,',
    '',
    'The August parallel run finished yesterday. 6,102 of 6,240 employees matched within the £1 '
    'tolerance, a match rate of 97.8%.',
    'The 138 differences come from two causes: 96 are holiday pay averaging for shift workers and 42 are '
    'pension rounding on Aviva contributions.',
    'Sunil has fixed the pension rounding rule in the test tenant.',
    'Holiday pay averaging needs a decision from the design authority, because the legacy system used a '
    '12-week reference period and the law now requires 52 weeks.',
    '',
    "We decided on this morning's call to adopt the 52-week reference period and to run a third parallel "
    'run on the September payroll.',
    'The third parallel run is scheduled for 21 September 2026.',
    '',
    'Regards,',
    'Aisha',
    '',
    '-----Original Message-----',
    'From: Sunil Batra',
    'Sent: 2 September 2026 17:05',
    'Subject: Payroll parallel run results',
    '',
    'The July parallel run matched 94.1% of employees.',
    'The main cause was missing overtime premiums for the Felixstowe night shift, now fixed.',
    '',
])


def build_slides(path: Path) -> None:
    from pptx import Presentation

    deck = Presentation()
    for title, bullets in SLIDES:
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = title
        body = slide.placeholders[1].text_frame
        body.text = bullets[0]
        for bullet in bullets[1:]:
            body.add_paragraph().text = bullet
    deck.save(str(path))


def build_raid(path: Path) -> None:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "RAID"
    for row in RAID:
        sheet.append(list(row))
    book.save(str(path))


def build_charter(path: Path) -> None:
    import docx

    document = docx.Document()
    for text, heading in CHARTER:
        if heading:
            document.add_heading(text, level=1)
        else:
            document.add_paragraph(text)
    document.save(str(path))


def build_thread(path: Path) -> None:
    message = EmailMessage()
    message["Subject"] = "RE: Payroll parallel run results"
    message["From"] = "Aisha Mensah <aisha.mensah@corrigan.example>"
    message["To"] = "Priya Raman <priya.raman@bayline.example>"
    message["Cc"] = "Sunil Batra <sunil.batra@corrigan.example>, Lena Vos <lena.vos@bayline.example>"
    message["Date"] = "Thu, 03 Sep 2026 08:12:00 +0100"
    message.set_content(THREAD)
    path.write_bytes(bytes(message))


def main() -> None:
    build_slides(FOLDER / "Steering committee 2026-04-21.pptx")
    build_raid(FOLDER / "RAID register.xlsx")
    build_charter(FOLDER / "Project charter.docx")
    build_thread(FOLDER / "RE Payroll parallel run results.eml")


if __name__ == "__main__":
    main()
