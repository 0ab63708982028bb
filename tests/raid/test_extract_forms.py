"""The extraction rules on the forms people write items in (pure functions, no database)."""

from __future__ import annotations

from datetime import date

from kap.raid import dates
from kap.raid.extract import Segment, extract

MEETING = date(2026, 2, 17)  # a Tuesday


def _one(text: str, *, kind: str = "md", locator: str = "", name: str = "Notes.md") -> list[tuple[object, ...]]:
    found = extract([Segment(text, None, locator)], name=name, kind=kind, ref_date=MEETING)
    return [(p.kind, p.ref, p.title, p.owner, p.due, p.status, p.severity) for p in found]


def test_labelled_lines_with_owner_fields_and_dates() -> None:
    text = ("Risk: Data migration tool licence may lapse before Mock 2. Owner: Marcus Lee. Severity: High\n"
            "Issue I-12 - Payroll test tenant is refreshed weekly (owner: Priyanka Shah)\n"
            "* Action A-21: Luis Ortega to send the revised plan by Friday\n"
            "Decision: Go-live stays on September 1, 2026\n"
            "Decision-making is slow in this workstream.")
    assert _one(text) == [
        ("risk", None, "Data migration tool licence may lapse before Mock 2", "Marcus Lee", None, "open", "high"),
        ("issue", "I-12", "Payroll test tenant is refreshed weekly", "Priyanka Shah", None, "open", None),
        ("action", "A-21", "Send the revised plan", "Luis Ortega", date(2026, 2, 20), "open", None),
        ("decision", None, "Go-live stays on September 1, 2026", None, None, "decided", None),
    ]


def test_items_under_headings_until_the_list_ends() -> None:
    text = ("## Next steps\n\n- Hannah Brooks to confirm the SFTP keys by 2026-03-02\n"
            "- Dana Whitfield will sign the CR by next Tuesday\n\nThe workshop ended at 16:00.\n\n"
            "Decisions needed:\n- Approve the Kronos Studio build\n\nOpen questions\n"
            "- Who signs off the test exit?")
    assert _one(text) == [
        ("action", None, "Confirm the SFTP keys", "Hannah Brooks", date(2026, 3, 2), "open", None),
        ("action", None, "Sign the CR", "Dana Whitfield", date(2026, 2, 24), "open", None),
        ("decision", None, "Approve the Kronos Studio build", None, None, "pending", None),
        ("issue", None, "Who signs off the test exit?", None, None, "open", None),
    ]


def test_a_raid_table_in_any_column_order_and_wording() -> None:
    rows = ("Item #: 14; Category: Issue; Summary: Badge data is missing for 3 clinics; Assignee: Marcus Lee; "
            "Target date: 3/15/2026; State: In progress; Priority: Medium\n"
            "Item #: 15; Category: Assumption; Summary: Client provides test data; Assignee: Dana Whitfield; "
            "State: Open\n"
            "Item #: 16; Category: Action; Summary: Book the cutover rehearsal; Assignee: Luis Ortega; "
            "Target date: 15.04.2026; State: Done")
    found = _one(rows, kind="xlsx", locator="Sheet Log, rows 2-4", name="Tracker.xlsx")
    assert found == [
        ("issue", "14", "Badge data is missing for 3 clinics", "Marcus Lee", date(2026, 3, 15), "in_progress",
         "medium"),
        ("action", "16", "Book the cutover rehearsal", "Luis Ortega", date(2026, 4, 15), "done", None),
    ]
    located = extract([Segment(rows, 1, "Sheet Log, rows 2-4")], name="Tracker.xlsx", kind="xlsx", ref_date=MEETING)
    assert [p.locator for p in located] == ["Sheet Log, row 2", "Sheet Log, row 4"]


def test_a_table_that_is_not_a_raid_log_gives_nothing() -> None:
    rows = ("ID: INT-01; Name: Benefits enrollment; Vendor: Anthem; Frequency: Weekly\n"
            "ID: INT-02; Name: Time clock punches; Vendor: Kronos; Frequency: Hourly")
    assert _one(rows, kind="csv", locator="Rows 2-3", name="Integration inventory.csv") == []


def test_a_mail_thread_reads_only_the_newest_message() -> None:
    mail = ("Subject: Re: cutover\nFrom: Luis Ortega <luis@example.com>\nDate: Tue, 17 Feb 2026 10:45:00 -0500\n\n"
            "Team,\nPriyanka will send the pay group mapping by Thursday. We need a decision on the rollback window.\n"
            "There is an open question about the Fidelity file layout.\n\n"
            "On Mon, 16 Feb 2026, Dana wrote:\n> Marcus to book the rehearsal by Monday.\n")
    found = extract([Segment(mail, None, "Message")], name="Re cutover.eml", kind="eml", ref_date=MEETING)
    assert [(p.kind, p.title, p.owner, p.due, p.status) for p in found] == [
        ("action", "Send the pay group mapping", "Priyanka", date(2026, 2, 19), "open"),
        ("decision", "The rollback window", None, None, "pending"),
        ("issue", "Open question about the Fidelity file layout", None, None, "open"),
    ]
    assert all(p.quote in mail for p in found)


def test_dates_in_their_common_forms() -> None:
    # Without a year: the coming date, unless it is less than two months past (an overdue item).
    cases = {"by January 23, 2026": date(2026, 1, 23), "due 23 Jan": date(2026, 1, 23),
             "due 23 Mar": date(2026, 3, 23), "by Nov 5": date(2026, 11, 5), "by 5 December": date(2026, 12, 5),
             "by 2026-03-01": date(2026, 3, 1), "by 03/04/2026": date(2026, 3, 4), "by 23/01/2026": date(2026, 1, 23),
             "by 5th March": date(2026, 3, 5), "by end of week": date(2026, 2, 20), "by tomorrow": date(2026, 2, 18),
             "by end of month": date(2026, 2, 28), "before Mon": date(2026, 2, 23)}
    for text, wanted in cases.items():
        assert dates.due_date(f"Send it {text}.", MEETING)[0] == wanted, text
    assert dates.due_date("The meeting is every Tuesday at 10:00.", MEETING)[0] is None
    assert dates.document_date("Kickoff minutes 2026-01-13.docx", "", MEETING) == date(2026, 1, 13)
    assert dates.document_date("x.eml", "Subject: a\nDate: Tue, 17 Feb 2026 10:45:00 -0500", MEETING) == MEETING
    assert dates.document_date("RAID log.xlsx", "ID: R-07; ends August 31, 2026", MEETING, prose=False) is None
