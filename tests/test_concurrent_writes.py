"""A savepoint that reads and then writes while another connection writes loses nothing."""

from __future__ import annotations

import threading
import time
import uuid

from sqlalchemy import select

from kap.core.db import Database
from kap.core.models import Org


def _new_org(db: Database) -> uuid.UUID:
    with db.service_transaction() as session:
        org = Org(name=f"org {uuid.uuid4().hex[:6]}")
        session.add(org)
        session.flush()
        return org.id


def _rename(db: Database, org_id: uuid.UUID, errors: list[BaseException]) -> None:
    try:
        with db.service_transaction() as session:
            org = session.get(Org, org_id)
            assert org is not None
            org.name = "renamed by the other writer"
    except BaseException as exc:  # reported to the test thread
        errors.append(exc)


def test_a_savepoint_that_reads_then_writes_survives_another_writer(db: Database) -> None:
    first, second = _new_org(db), _new_org(db)
    errors: list[BaseException] = []
    with db.service_session() as session, session.begin():
        with session.begin_nested():  # as the smoke run's steps and joined service work do
            session.scalar(select(Org.name).where(Org.id == first))
            other = threading.Thread(target=_rename, args=(db, second, errors))
            other.start()
            time.sleep(0.3)  # the other writer commits (or, holding the lock here, waits its turn)
            org = session.get(Org, first)
            assert org is not None
            org.name = "renamed in the savepoint"
            session.flush()
    other.join(20)
    assert not other.is_alive()
    assert errors == []
    with db.service_transaction() as session:
        names = {session.get(Org, first).name, session.get(Org, second).name}  # type: ignore[union-attr]
    assert names == {"renamed in the savepoint", "renamed by the other writer"}
