"""Bad input for the sales calls over HTTP (issue 15): each answers problem+json naming the
offending field, and writes nothing: every table, the outbox included, is as it was."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from tests.api.conftest import Running


def _snapshot(running: Running) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in a stable order (the whole database, events included)."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    engine = running.system.db.engine
    with engine.connect() as conn:
        meta = sa.MetaData()
        meta.reflect(bind=engine)
        for name, table in sorted(meta.tables.items()):
            # A key's last use is stamped on every call; the bus's counters for /metrics are
            # flushed about once a second: neither is a business record.
            if name in ("api_keys", "event_counters"):
                continue
            rows = conn.execute(sa.select(table)).all()
            out[name] = sorted((tuple(r) for r in rows), key=repr)
    return out


@pytest.fixture
def subscribed(running: Running) -> dict[str, Any]:
    """A customer with a live pro subscription, one whose subscription was cancelled now and
    one whose subscription ends at the period end."""
    with running.client(running.admin) as c:
        for cid in ("cus_live", "cus_gone", "cus_ending"):
            r = c.post("/v1/customers", json={"id": cid, "email": f"{cid}@example.com", "name": cid, "country": "DE"})
            assert r.status_code == 201, r.text
        live = c.post("/v1/subscriptions", json={"customer_id": "cus_live", "plan": "pro", "trial_days": 0})
        gone = c.post("/v1/subscriptions", json={"customer_id": "cus_gone", "plan": "pro", "trial_days": 0})
        ending = c.post("/v1/subscriptions", json={"customer_id": "cus_ending", "plan": "pro", "trial_days": 0})
        assert live.status_code == gone.status_code == ending.status_code == 201, (live.text, gone.text)
        r = c.post(f"/v1/subscriptions/{gone.json()['id']}/cancel", json={"at": "now"})
        assert r.status_code == 200, r.text
        r = c.post(f"/v1/subscriptions/{ending.json()['id']}/cancel", json={"at": "period_end"})
        assert r.status_code == 200, r.text
    running.system.drain()
    return {"live": live.json()["id"], "gone": gone.json()["id"], "ending": ending.json()["id"]}


CASES = [
    # (what, method path (with {live} / {gone}), body, status, field)
    ("change to an unknown plan", "/v1/subscriptions/{live}/change", {"plan": "platinum"}, 404, "plan"),
    ("change to an unknown plan, now", "/v1/subscriptions/{live}/change", {"plan": "platinum", "at": "now"}, 404,
     "plan"),
    ("subscribe an unknown customer", "/v1/subscriptions", {"customer_id": "cus_nobody", "plan": "pro"}, 404,
     "customer_id"),
    ("subscribe to an unknown plan", "/v1/subscriptions", {"customer_id": "cus_live", "plan": "platinum"}, 404,
     "plan"),
    ("an unknown coupon", "/v1/subscriptions", {"customer_id": "cus_live", "plan": "pro", "coupon": "NOPE"}, 404,
     "coupon"),
    # A known coupon whose stored terms refuse it: a clash with what is stored (README "Limits").
    ("a coupon for another plan", "/v1/subscriptions",
     {"customer_id": "cus_live", "plan": "enterprise", "coupon": "WELCOME20"}, 409, "coupon"),
    ("a change with at=now of a cancelled subscription", "/v1/subscriptions/{gone}/change",
     {"plan": "enterprise", "at": "now"}, 409, "subscription_id"),
    ("a change with at=period_end of a cancelled subscription", "/v1/subscriptions/{gone}/change",
     {"quantity": 3, "at": "period_end"}, 409, "subscription_id"),
    ("a downgrade at period end of a subscription cancelled at period end", "/v1/subscriptions/{ending}/change",
     {"plan": "free", "at": "period_end"}, 409, "at"),
    ("a change of an unknown subscription", "/v1/subscriptions/sub_nope/change", {"plan": "pro"}, 404,
     "subscription_id"),
    ("cancel a cancelled subscription", "/v1/subscriptions/{gone}/cancel", {"at": "now"}, 409, "subscription_id"),
    ("a change with a bad at", "/v1/subscriptions/{live}/change", {"plan": "enterprise", "at": "tomorrow"}, 422, "at"),
    ("a quantity that is no number", "/v1/subscriptions/{live}/change", {"quantity": "many"}, 422, "quantity"),
    ("a quantity too large to price", "/v1/subscriptions", {"customer_id": "cus_live", "plan": "pro",
                                                            "quantity": "1e400"}, 422, "quantity"),
    ("a change to a quantity too large to price", "/v1/subscriptions/{live}/change", {"quantity": "1e400"}, 422,
     "quantity"),
    ("a negative quantity", "/v1/subscriptions", {"customer_id": "cus_live", "plan": "pro", "quantity": -2}, 422,
     "quantity"),
    # The contract says "amount or grant": a body without either is refused as the schema
    # refuses it, whoever it names (schemathesis found a 404 for an unknown customer).
    ("a grant of nothing", "/v1/customers/cus_live/wallet/grants", {"reason": "why not"}, 422, "amount"),
    ("a grant of nothing to nobody", "/v1/customers/cus_nobody/wallet/grants", {"reason": "why not"}, 422, "amount"),
]


@pytest.mark.parametrize(("what", "path", "body", "status", "field"), CASES, ids=[c[0] for c in CASES])
def test_bad_sales_input_names_the_field_and_writes_nothing(
    running: Running, subscribed: dict[str, Any], what: str, path: str, body: dict[str, Any], status: int, field: str
) -> None:
    before = _snapshot(running)
    with running.client(running.admin) as c:
        r = c.post(path.format(**subscribed), json=body)
    assert r.status_code == status, (what, r.text)
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    assert r.json()["field"] == field, r.json()
    running.system.drain()
    assert _snapshot(running) == before, what
