"""Three renewals in one bus batch of invoice.finalized (payments' batch twin writes them at
the batch's end): a hard decline, a soft decline and a good card, through HTTP with the shipped
rules and the sandbox PSP, on SQLite and PostgreSQL. Each is charged once, only the soft
decline gets a retry, and the batch delivered again charges nothing more."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from engine.api import create_app, create_key
from engine.automation import ScheduledJob
from engine.payments.models import Payment
from engine.store import Database, OutboxEvent
from engine.system import System
from tests.automation.conftest import FAILING_CARD, GOOD_CARD, Inbox, Server, make_system
from tests.automation.test_declines_http import HARD_DECLINE, advance

CARDS = {"cus_good": GOOD_CARD, "cus_soft": FAILING_CARD, "cus_hard": HARD_DECLINE}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def client(
    request: pytest.FixtureRequest, tmp_path: Any, psp: Server, inbox: tuple[Inbox, str]
) -> Iterator[tuple[System, TestClient]]:
    url = None if request.param == "sqlite" else request.getfixturevalue("pg_db").url
    handler, smtp_url = inbox
    system = make_system(tmp_path, psp.url, smtp_url, database_url=url)
    handler.clock = system.test_clock
    with system.db.session() as s:
        _, admin = create_key(s, "admin", now=datetime(2026, 3, 1, tzinfo=UTC))
    with TestClient(create_app(system.api_context()), headers={"Authorization": f"Bearer {admin}"}) as http:
        yield system, http
    system.db.dispose()


def _renewals(db: Database) -> dict[str, str]:
    """customer -> the id of their second invoice (the renewal)."""
    seen: dict[str, list[str]] = {}
    with db.read_session() as s:
        for e in s.scalars(
            select(OutboxEvent).where(OutboxEvent.type == "invoice.finalized").order_by(OutboxEvent.seq)
        ):
            seen.setdefault(str(e.customer_id), []).append(str(e.properties["invoice_id"]))
    return {c: ids[1] for c, ids in seen.items() if len(ids) > 1}


def _attempts(db: Database) -> list[tuple[str, int, str, str | None, bool | None]]:
    with db.read_session() as s:
        return sorted(
            (p.customer_id, p.attempt, p.status, p.decline_code, p.retryable) for p in s.scalars(select(Payment))
        )


def test_a_batch_with_a_hard_decline_a_soft_one_and_a_success_charges_each_once(
    client: tuple[System, TestClient],
) -> None:
    system, http = client
    for cid in CARDS:  # all at the same instant: their renewals fall due together
        r = http.post("/v1/customers", json={"id": cid, "email": f"{cid}@example.com", "name": cid, "country": "US"})
        assert r.status_code == 201, r.text
        r = http.post(
            "/v1/subscriptions",
            json={"customer_id": cid, "plan": "basic", "payment_method": {"type": "card", "token": GOOD_CARD}},
        )
        assert r.status_code == 201, r.text
    advance(http, "1h")
    for cid, card in CARDS.items():  # the renewal is charged to the card the customer has now
        r = http.post(f"/v1/customers/{cid}/payment_methods", json={"type": "card", "token": card})
        assert r.status_code == 201, r.text

    batches: list[int] = []  # the payments reads of a batch: how many customers at once

    def count(_conn: Any, _cursor: Any, sql: str, params: Any, *_: Any) -> None:
        if sql.startswith("SELECT") and "FROM pay_methods" in sql and "IN (" in sql:
            values = params.values() if isinstance(params, dict) else params
            batches.append(sum(1 for v in values if v in CARDS))

    sa.event.listen(system.db.engine, "before_cursor_execute", count)
    try:
        advance(http, "1mo")  # the renewals: billed, collected, their rules run
    finally:
        sa.event.remove(system.db.engine, "before_cursor_execute", count)
    assert 3 in batches  # the three renewals reached payments in one batch
    renewals = _renewals(system.db)
    assert set(renewals) == set(CARDS)

    expected = [
        ("cus_good", 1, "succeeded", None, None),
        ("cus_good", 1, "succeeded", None, None),
        ("cus_hard", 1, "failed", "generic_decline", False),
        ("cus_hard", 1, "succeeded", None, None),
        ("cus_soft", 1, "failed", "insufficient_funds", True),
        ("cus_soft", 1, "succeeded", None, None),
    ]
    assert _attempts(system.db) == expected  # each first invoice and each renewal: one charge
    with system.db.read_session() as s:
        jobs = [
            (j.customer_id, j.payload.get("invoice_id"))
            for j in s.scalars(select(ScheduledJob).where(ScheduledJob.kind == "payment_retry"))
        ]
    assert jobs == [("cus_soft", renewals["cus_soft"])]

    # The batch delivered again (a worker died before settling it): nothing more is charged.
    with system.db.session() as s:
        s.execute(update(OutboxEvent).where(OutboxEvent.type == "invoice.finalized").values(published_at=None))
    system.drain()
    assert _attempts(system.db) == expected
    with system.db.read_session() as s:
        assert len(s.scalars(select(ScheduledJob).where(ScheduledJob.kind == "payment_retry")).all()) == 1
