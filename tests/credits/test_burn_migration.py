"""Migration 0018 (docs/credits.md, Token wallets): a database at 0017 holding burns gets each
grant's `usage_burned` from its usage entries, so the burn after the upgrade burns nothing
more than what usage asks beyond them, and the access figures are those the entries gave."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
import sqlalchemy as sa

from engine import credits
from engine.credits.burn import burned_many
from engine.store import Database
from engine.store.base import DecimalString, UTCDateTime
from engine.store.migrate import upgrade

T0 = datetime(2026, 3, 1, 9, tzinfo=UTC)
D = Decimal
GRANTS = sa.table("credits_grants", *(sa.column(c, sa.String()) for c in
                                     ("id", "customer_id", "unit", "source", "rollover", "status", "reason",
                                      "created_by")),
                  sa.column("amount", DecimalString()), sa.column("priority", sa.Integer()),
                  sa.column("effective_at", UTCDateTime()), sa.column("created_at", UTCDateTime()))
ENTRIES = sa.table("credits_entries", *(sa.column(c, sa.String()) for c in
                                       ("customer_id", "grant_id", "kind", "invoice_id", "note")),
                   sa.column("amount", DecimalString()), sa.column("created_at", UTCDateTime()))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest, tmp_path) -> str:  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/at0017.db"
    from tests.conftest import create_pg_database, drop_pg_database

    admin = request.getfixturevalue("pg_server")
    url = create_pg_database(admin)
    request.addfinalizer(lambda: drop_pg_database(admin, url))
    return url


def _grant(gid: str, cid: str, unit: str, amount: str, status: str = "active") -> dict[str, object]:
    return {"id": gid, "customer_id": cid, "unit": unit, "source": "operator", "rollover": "all", "status": status,
            "reason": "", "created_by": "", "amount": D(amount), "priority": 100, "effective_at": T0,
            "created_at": T0}


def _entry(gid: str, cid: str, kind: str, amount: str, invoice: str | None = None) -> dict[str, object]:
    return {"customer_id": cid, "grant_id": gid, "kind": kind, "invoice_id": invoice, "note": "usage",
            "amount": D(amount), "created_at": T0}


def test_a_database_at_0017_holding_burns_upgrades_with_the_burned_figures(empty_url: str) -> None:
    upgrade(empty_url, "0017_credit_note_to_balance")
    engine = sa.create_engine(empty_url)
    with engine.begin() as conn:  # what 0017's burns wrote: entries only
        conn.execute(sa.insert(GRANTS), [_grant("g1", "cus_a", "tokens", "1000"),
                                         _grant("g2", "cus_a", "tokens", "100"),
                                         _grant("g3", "cus_a", "tokens", "50", status="expired"),
                                         _grant("m1", "cus_a", "USD", "20.00"),
                                         _grant("g4", "cus_b", "tokens", "10")])
        conn.execute(sa.insert(ENTRIES), [
            _entry("g1", "cus_a", "grant", "1000"), _entry("g1", "cus_a", "consumption", "-333.5"),
            _entry("g1", "cus_a", "consumption", "-0.25"), _entry("g2", "cus_a", "grant", "100"),
            _entry("g2", "cus_a", "consumption", "-40"),
            _entry("g3", "cus_a", "grant", "50"), _entry("g3", "cus_a", "consumption", "-30"),
            _entry("g3", "cus_a", "expiry", "-20"),
            _entry("m1", "cus_a", "grant", "20.00"), _entry("m1", "cus_a", "consumption", "-7.50", "inv_1"),
            _entry("g4", "cus_b", "grant", "10")])
    engine.dispose()
    upgrade(empty_url)
    db = Database(empty_url)
    try:
        with db.session() as s:
            burned_of = dict(s.execute(sa.text("SELECT id, usage_burned FROM credits_grants")).all())
            assert {k: D(str(v)) for k, v in burned_of.items()} == {
                "g1": D("333.75"), "g2": D(40), "g3": D(30), "m1": D(0), "g4": D(0)}
            assert burned_many(s, ["cus_a", "cus_b"], "tokens") == {"cus_a": D("403.75"), "cus_b": D(0)}
            assert credits.burned(s, "cus_a", "USD") == D(0)  # an invoice's draw is no usage
            # usable: g1 666.25 + g2 60 (g3 expired); as the entries said before the upgrade
            assert credits.spend_figures(s, ["cus_a", "cus_b"], "tokens", T0) == {
                "cus_a": (D("726.25"), D("403.75")), "cus_b": (D(10), D(0))}
            again = credits.burn_batch(s, "tokens", {"cus_a": D("403.75"), "cus_b": D(0)}, T0)
            assert again == {"cus_a": ([], D(0)), "cus_b": ([], D(0))}  # nothing more burned
            more = credits.burn_batch(s, "tokens", {"cus_a": D("413.75"), "cus_b": D(0)}, T0)
            assert [(b.grant_id, b.amount, b.used_before) for b in more["cus_a"][0]] == [
                ("g1", D(10), D("333.75"))]
            assert more["cus_a"][1] == D("716.25")
            s.commit()
        with db.session() as s:
            assert credits.burned(s, "cus_a", "tokens") == D("413.75")
    finally:
        db.dispose()
