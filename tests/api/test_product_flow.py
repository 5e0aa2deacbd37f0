"""The product's flow over real HTTP, as a product engineer would script it."""

from __future__ import annotations

from sqlalchemy import func, select

from engine import dunning
from engine.sales.models import UsageRecord
from engine.store import OutboxEvent
from tests.api.conftest import Running


def _usage(n: int, start: int = 0) -> list[dict[str, object]]:
    return [
        {
            "id": f"evt_{start + i}",
            "type": "api.request",
            "customer_id": "cus_42",
            "time": "2026-11-01T10:00:00Z",
            "properties": {"endpoint": "/v1/search"},
        }
        for i in range(n)
    ]


def test_free_customer_hits_the_quota_upgrades_and_is_allowed(running: Running) -> None:
    admin, product = running.client(running.admin), running.client(running.product)
    r = admin.post("/v1/customers", json={"id": "cus_42", "email": "ada@example.com", "name": "Ada", "country": "CH"})
    assert r.status_code == 201, r.text
    r = admin.post("/v1/subscriptions", json={"customer_id": "cus_42", "plan": "free"})
    assert r.status_code == 201, r.text
    sub_id = r.json()["id"]

    check = {"customer_id": "cus_42", "feature": "api"}
    first = product.post("/v1/access/check", json=check).json()
    assert (first["allowed"], first["reason"], first["limit"], first["used"]) == (True, "plan", 1000, 0)

    r = product.post("/v1/events", json=_usage(1000))
    assert r.status_code == 202 and r.json() == {"received": 1000, "accepted": 1000, "duplicates": 0}
    denied = product.post("/v1/access/check", json=check).json()
    assert str(denied.pop("decision_id")).startswith("dec_")  # the denial is in the decision log
    assert denied == {
        "allowed": False,
        "feature": "api",
        "reason": "quota_exceeded",
        "limit": 1000,
        "used": 1000,
        "remaining": 0,
        "plan": "free",
        "rules": [],
        "offer": {"plan": "pro", "name": "Pro"},
    }
    with running.system.db.session() as s:
        types = list(s.scalars(select(OutboxEvent.type).order_by(OutboxEvent.seq)))
    assert "access.denied" in types
    assert types.count("usage.threshold_reached") == 2  # 80 % and 100 %, once each

    r = admin.post(f"/v1/subscriptions/{sub_id}/change", json={"plan": "pro"})
    assert r.status_code == 200, r.text
    after = product.post("/v1/access/check", json=check).json()
    assert (after["allowed"], after["plan"], after["limit"]) == (True, "pro", 100000)

    invoices = admin.get("/v1/customers/cus_42/invoices").json()
    assert invoices["total"] >= 1
    invoice = admin.get(f"/v1/invoices/{invoices['items'][0]['id']}").json()
    assert invoice["customer_id"] == "cus_42" and invoice["lines"]


def test_batch_check_and_duplicate_events(running: Running) -> None:
    admin, product = running.client(running.admin), running.client(running.product)
    admin.post("/v1/customers", json={"id": "cus_42", "email": "a@b.c", "name": "A"})
    admin.post("/v1/subscriptions", json={"customer_id": "cus_42", "plan": "pro", "quantity": 2})
    r = product.post(
        "/v1/access/check", json=[{"customer_id": "cus_42", "feature": f} for f in ("sso", "audit_log", "projects")]
    )
    assert [(d["feature"], d["allowed"], d["reason"]) for d in r.json()] == [
        ("sso", True, "plan"),
        ("audit_log", False, "not_in_plan"),
        ("projects", True, "plan"),
    ]
    assert r.json()[1]["offer"] == {"plan": "enterprise", "name": "Enterprise"}

    events = _usage(3)
    assert product.post("/v1/events", json=events).json() == {"received": 3, "accepted": 3, "duplicates": 0}
    assert product.post("/v1/events", json=events[0]).json() == {"received": 1, "accepted": 0, "duplicates": 1}
    with running.system.db.session() as s:
        assert s.scalar(select(func.count()).select_from(UsageRecord)) == 3


def test_suspended_account_is_denied(running: Running) -> None:
    admin, product = running.client(running.admin), running.client(running.product)
    admin.post("/v1/customers", json={"id": "cus_42", "email": "a@b.c", "name": "A"})
    admin.post("/v1/subscriptions", json={"customer_id": "cus_42", "plan": "pro"})
    with running.system.db.session() as s:
        dunning.set_state(s, "cus_42", "suspended", now=running.system.clock.now())
    running.system.access.invalidate("cus_42")
    r = product.post("/v1/access/check", json={"customer_id": "cus_42", "feature": "sso"}).json()
    assert (r["allowed"], r["reason"]) == (False, "payment_overdue")


def test_unknown_customer_is_a_denial_and_unknown_feature_a_404(running: Running) -> None:
    admin, product = running.client(running.admin), running.client(running.product)
    r = product.post("/v1/access/check", json={"customer_id": "nobody", "feature": "api"})
    assert r.status_code == 200 and r.json()["reason"] == "no_customer"
    admin.post("/v1/customers", json={"id": "cus_42", "email": "a@b.c", "name": "A"})
    admin.post("/v1/subscriptions", json={"customer_id": "cus_42", "plan": "free"})
    r = product.post("/v1/access/check", json={"customer_id": "cus_42", "feature": "teleport"})
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["field"] == "feature"


def test_quote_over_http_matches_the_cli_format(running: Running) -> None:
    product = running.client(running.product)
    r = product.post(
        "/v1/quotes",
        json={"plan": "pro", "quantity": 3, "usage": {"api_calls": "15000"}, "period": "2026-11-01/2026-12-01"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    calls = next(x for x in body["lines"] if x["price_id"] == "calls")
    assert calls["amount"] == "10.00" and body["total"] == "89.00"
    r = product.post("/v1/quotes", json={"plan": "pro", "coupon": "NOPE"})  # unknown, as on a subscription
    assert r.status_code == 404 and r.json()["field"] == "coupon"


def test_workers_include_the_denial_writer_and_threshold_watcher(running: Running) -> None:
    import threading

    names = {t.name for t in threading.enumerate()}
    assert {"bus", "rules-refresh", "quota-thresholds", "access-denials"} <= names


def test_an_api_only_process_still_writes_its_buffered_denials(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`billing serve --no-workers` leaves events to `billing worker`, but the denials it
    buffered must still reach the outbox (the upsell loop starts there)."""
    import threading
    import time

    from engine.cli.commands.serve import migrate_database, start_system
    from engine.config import Settings

    url = f"sqlite:///{tmp_path}/api_only.db"
    migrate_database(url)
    settings = Settings(database_url=url, test_clock="2026-11-01T09:00:00Z", access_denial_buffer_ms=20)
    system, stop = start_system(settings, workers=False)
    try:
        names = {t.name for t in threading.enumerate()}
        assert "access-denials" in names and "quota-thresholds" in names and "rules-refresh" in names
        assert "bus" not in names
        decision = system.access.check_cached("nobody", "api") or system.access.check("nobody", "api")
        assert not decision.allowed and decision.reason == "no_customer"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with system.db.read_session() as s:
                denied = list(s.scalars(select(OutboxEvent.customer_id).where(OutboxEvent.type == "access.denied")))
            if denied:
                break
            time.sleep(0.05)
        assert denied == ["nobody"]
    finally:
        stop.set()


def test_an_api_only_process_sees_another_process_suspend_a_customer(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """An API process that handles no events follows the outbox: a dunning change made by
    another process reaches its next check within the follower's poll, not the (long) TTL."""
    import threading
    import time

    from engine import sales
    from engine.cli.commands.serve import migrate_database, start_system
    from engine.config import Settings
    from engine.system import build_system

    url = f"sqlite:///{tmp_path}/shared.db"
    migrate_database(url)
    settings = Settings(database_url=url, test_clock="2026-11-01T09:00:00Z", access_cache_ttl=3600)
    other = build_system(settings, create_tables=False)  # e.g. `billing worker` or an admin call
    with other.db.session() as s:
        sales.publish_catalog(s, "catalogs/saas.yaml", "test", clock=other.clock)
        sales.create_customer(s, {"id": "cus_9", "name": "N", "email": "n@x.io"}, clock=other.clock)
        sales.create_subscription(s, "cus_9", "pro", clock=other.clock)
    api, stop = start_system(settings, workers=False)
    try:
        assert "access-follower" in {t.name for t in threading.enumerate()}
        assert api.access.check("cus_9", "api").reason == "plan"  # now cached for an hour
        with other.db.session() as s:
            dunning.set_state(s, "cus_9", "suspended", now=other.clock.now())
        deadline = time.monotonic() + 10
        while api.access.check("cus_9", "api").reason != "payment_overdue":
            assert time.monotonic() < deadline, "the API process never saw the suspension"
            time.sleep(0.05)
    finally:
        stop.set()


def test_a_reused_event_id_with_another_body_is_a_409_naming_the_id(running: Running) -> None:
    """Idempotency keys as Stripe has them: the same id and body is a replay; the same id
    with another body is a conflict, and nothing of that batch is stored."""
    admin, product = running.client(running.admin), running.client(running.product)
    admin.post("/v1/customers", json={"id": "cus_42", "email": "a@b.c", "name": "A"})
    first = _usage(1)[0]
    assert product.post("/v1/events", json=first).status_code == 202
    # The same event written another way (another zone, keys in another order) is a replay.
    same = {**first, "time": "2026-11-01T11:00:00+01:00", "properties": dict(first["properties"])}  # type: ignore[call-overload]
    assert product.post("/v1/events", json=same).json() == {"received": 1, "accepted": 0, "duplicates": 1}

    changed = {**first, "properties": {"endpoint": "/v1/export"}}
    fresh = _usage(1, start=7)[0]
    r = product.post("/v1/events", json=[fresh, changed])
    assert r.status_code == 409, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["field"] == "events[1].id" and "evt_0" in r.json()["detail"]
    r = product.post("/v1/events", json=[fresh, {**fresh, "time": "2026-11-02T10:00:00Z"}])
    assert (r.status_code, r.json()["field"]) == (409, "events[1].id")
    with running.system.db.session() as s:
        assert set(s.scalars(select(UsageRecord.id))) == {"evt_0"}
        assert s.scalar(select(func.count()).select_from(OutboxEvent).where(OutboxEvent.type == "usage.recorded")) == 1
