"""Access decisions: the pure rules of plans, quotas and dunning, then the service on a store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from engine import dunning, sales
from engine.access import AccessService, AccessView, RuleAction, Snapshot, UnknownFeature, combine, plan_decision
from engine.catalog import load_catalog
from engine.clock import TestClock
from engine.store import Database, OutboxEvent
from engine.system import access_readers

SAAS = load_catalog("catalogs/saas.yaml")


def snap(plan: str | None = "free", state: str = "active", calls: int = 0, known: bool = True) -> Snapshot:
    return Snapshot(
        "c1",
        known,
        {"id": "c1", "tags": []},
        {"status": "active"} if plan else None,
        SAAS if plan else None,
        SAAS.plan(plan) if plan else None,
        state,
        {"api_calls": D(calls)},
    )


class TestPlanDecision:
    def test_boolean_feature_in_and_out_of_plan(self) -> None:
        assert plan_decision(snap("pro"), "sso", D(1)).reason == "plan"
        denied = plan_decision(snap("free"), "sso", D(1))
        assert (denied.allowed, denied.reason) == (False, "not_in_plan")
        assert denied.offer == {"plan": "pro", "name": "Pro"}  # free upgrades to pro, which grants sso
        # enterprise is the top plan: nothing to offer for a feature it lacks
        assert plan_decision(snap("enterprise"), "beta_ai", D(1)).offer is None

    def test_metered_quota_blocks_at_the_limit_and_offers_the_upgrade(self) -> None:
        ok = plan_decision(snap("free", calls=999), "api", D(1))
        assert (ok.allowed, ok.limit, ok.used, ok.remaining) == (True, D(1000), D(999), D(1))
        over = plan_decision(snap("free", calls=1000), "api", D(1))
        assert (over.allowed, over.reason, over.remaining) == (False, "quota_exceeded", D(0))
        assert over.offer == {"plan": "pro", "name": "Pro"}
        # "would 5 more be allowed?" with 996 used: no
        assert not plan_decision(snap("free", calls=996), "api", D(5)).allowed

    def test_overage_allow_lets_pro_go_past_its_limit(self) -> None:
        d = plan_decision(snap("pro", calls=100_000), "api", D(1))
        assert (d.allowed, d.reason) == (True, "overage")

    def test_quantity_feature(self) -> None:
        assert plan_decision(snap("free"), "projects", D(1), in_use=D(0)).allowed
        d = plan_decision(snap("free"), "projects", D(1), in_use=D(1))
        assert (d.allowed, d.reason, d.limit) == (False, "quota_exceeded", D(1))

    @pytest.mark.parametrize(
        ("state", "reason"), [("suspended", "payment_overdue"), ("cancelled", "subscription_inactive")]
    )
    def test_dunning_state(self, state: str, reason: str) -> None:
        d = plan_decision(snap("pro", state=state), "sso", D(1))
        assert (d.allowed, d.reason) == (False, reason)
        assert plan_decision(snap("pro", state="warning"), "sso", D(1)).allowed

    def test_no_customer_and_no_subscription(self) -> None:
        assert plan_decision(snap(known=False), "sso", D(1)).reason == "no_customer"
        assert plan_decision(snap(None), "sso", D(1)).reason == "subscription_inactive"


class TestRules:
    def test_deny_wins_over_allow(self) -> None:
        base = plan_decision(snap("pro"), "sso", D(1))
        d = combine(
            base,
            [
                RuleAction("access", "partner", "allow", {}),
                RuleAction("access", "embargo", "deny", {"reason": "embargoed"}),
            ],
        )
        assert (d.allowed, d.reason, d.rules) == (False, "embargoed", ("access/embargo",))

    def test_rule_allow_unlocks_what_the_plan_denies(self) -> None:
        base = plan_decision(snap("pro", state="suspended"), "data_export", D(1))
        d = combine(base, [RuleAction("access", "export-while-suspended", "allow", {"reason": "export_allowed"})])
        assert (d.allowed, d.reason, d.rules) == (True, "export_allowed", ("access/export-while-suspended",))

    def test_a_rule_cannot_vouch_for_an_unknown_customer(self) -> None:
        base = plan_decision(snap(known=False), "sso", D(1))
        assert not combine(base, [RuleAction("a", "r", "allow", {})]).allowed


def test_view_caches_until_invalidated() -> None:
    now = [0.0]
    view = AccessView(ttl=10, monotonic=lambda: now[0])
    loads = []

    def load() -> Snapshot:
        loads.append(1)
        return snap()

    view.get("c1", load)
    view.get("c1", load)
    assert len(loads) == 1
    view.invalidate("c1")
    view.get("c1", load)
    now[0] = 11  # past the TTL
    view.get("c1", load)
    assert len(loads) == 3


def test_new_usage_refreshes_only_the_usage_of_a_cached_snapshot() -> None:
    now = [0.0]
    view = AccessView(ttl=10, monotonic=lambda: now[0])
    calls: list[str] = []

    def load() -> Snapshot:
        calls.append("load")
        return snap(calls=1)

    def refresh(old: Snapshot) -> Snapshot:
        calls.append("usage")
        return snap(calls=int(old.usage["api_calls"]) + 5)

    view.get("c1", load, refresh)
    view.invalidate_usage("c1")
    assert view.peek("c1") is None  # stale: the fast path must not serve it
    assert view.get("c1", load, refresh).usage["api_calls"] == 6
    assert view.get("c1", load, refresh).usage["api_calls"] == 6  # cached again
    view.invalidate_usage("c1")
    now[0] = 11  # past the TTL: everything is reloaded, not just the usage
    view.get("c1", load, refresh)
    assert calls == ["load", "usage", "load"]

    def racing_refresh(old: Snapshot) -> Snapshot:
        view.invalidate_usage("c1")  # more usage lands while we read
        return refresh(old)

    view.invalidate_usage("c1")
    view.get("c1", load, racing_refresh)
    assert view.peek("c1") is None  # not cached as fresh: the next read refreshes again


def test_a_snapshot_loaded_during_an_invalidation_is_not_cached() -> None:
    view = AccessView(ttl=100)

    def racing_load() -> Snapshot:
        view.invalidate("c1")  # a write lands while we read
        return snap()

    view.get("c1", racing_load)
    assert len(view) == 0


@pytest.fixture
def world(db: Database) -> tuple[Database, TestClock, AccessService]:
    clock = TestClock(datetime(2026, 11, 1, 9, tzinfo=UTC))
    with db.session() as s:
        sales.publish_catalog(s, "catalogs/saas.yaml", "test", clock=clock)
        sales.create_customer(s, {"id": "acme", "name": "Acme", "email": "a@acme.test"}, clock=clock)
        sales.create_subscription(s, "acme", "free", clock=clock, id="sub_acme")
    return db, clock, AccessService(db, clock, access_readers(), AccessView(ttl=60))


def _events(db: Database, type: str) -> list[OutboxEvent]:
    from sqlalchemy import select

    with db.session() as s:
        return list(s.scalars(select(OutboxEvent).where(OutboxEvent.type == type).order_by(OutboxEvent.seq)))


def _calls(n: int, start: int, at: datetime) -> list[dict[str, object]]:
    return [
        {
            "id": f"evt_{start + i}",
            "type": "api.request",
            "customer_id": "acme",
            "time": (at + timedelta(seconds=i)).isoformat(),
        }
        for i in range(n)
    ]


def test_quota_then_upgrade_flow_on_the_store(world: tuple[Database, TestClock, AccessService]) -> None:
    db, clock, access = world
    assert access.check("acme", "api").allowed
    with db.session() as s:
        sales.ingest_events(s, _calls(800, 0, clock.now()), clock=clock)
    access.usage_changed(["acme"])
    assert _events(db, "usage.threshold_reached") == []  # announced off the ingestion path...
    assert access.announce_thresholds() == 1  # ...by the watcher
    reached = _events(db, "usage.threshold_reached")
    assert [(e.properties["feature"], e.properties["threshold"]) for e in reached] == [("api", 80)]

    with db.session() as s:
        sales.ingest_events(s, _calls(200, 800, clock.now()), clock=clock)
    access.usage_changed(["acme"])
    access.announce_thresholds()
    denied = access.check("acme", "api")
    assert (denied.allowed, denied.reason, denied.used, denied.offer) == (
        False,
        "quota_exceeded",
        D(1000),
        {"plan": "pro", "name": "Pro"},
    )
    assert [e.properties["threshold"] for e in _events(db, "usage.threshold_reached")] == [80, 100]
    (event,) = _events(db, "access.denied")
    assert event.customer_id == "acme" and event.properties["reason"] == "quota_exceeded"
    assert event.properties == {**denied.to_dict(), "count": 1}  # the answer's body, and how many

    access.check("acme", "api")  # a second denial is a second event, but no new threshold
    assert len(_events(db, "access.denied")) == 2
    assert len(_events(db, "usage.threshold_reached")) == 2

    with db.session() as s:
        sales.change_subscription(s, "sub_acme", clock=clock, plan="pro")
    access.invalidate("acme")
    after = access.check("acme", "api")
    assert (after.allowed, after.plan, after.limit) == (True, "pro", D(100000))


def test_suspended_account_is_denied_and_restored(world: tuple[Database, TestClock, AccessService]) -> None:
    db, clock, access = world
    with db.session() as s:
        dunning.set_state(s, "acme", "suspended", now=clock.now(), reason="test")
    access.invalidate("acme")
    assert access.check("acme", "data_export").reason == "payment_overdue"
    with db.session() as s:
        dunning.set_state(s, "acme", "active", now=clock.now())
    access.invalidate("acme")
    assert access.check("acme", "data_export").allowed
    assert [e.properties["to"] for e in _events(db, "dunning.state_changed")] == ["suspended", "active"]


def test_unknown_customer_feature_and_bad_quantity(world: tuple[Database, TestClock, AccessService]) -> None:
    _, _, access = world
    assert access.check("nobody", "api").reason == "no_customer"
    with pytest.raises(UnknownFeature, match="unknown feature 'teleport'"):
        access.check("acme", "teleport")
    with pytest.raises(ValueError, match="quantity: must be above zero"):
        access.check("acme", "api", D(0))


def test_the_configured_view_is_used_even_when_empty(sqlite_db: Database) -> None:
    view = AccessView(ttl=3600)
    service = AccessService(sqlite_db, TestClock(datetime(2026, 11, 1, tzinfo=UTC)), access_readers(), view)
    assert service.view is view


def test_buffered_denials_are_written_together(world: tuple[Database, TestClock, AccessService]) -> None:
    db, clock, _ = world
    access = AccessService(db, clock, access_readers(), AccessView(ttl=60), denial_buffer_seconds=0.05)
    for _ in range(3):
        assert access.check("acme", "sso").reason == "not_in_plan"
    access.check("acme", "audit_log")
    assert _events(db, "access.denied") == []  # not yet written...
    assert access.flush_denials() == 4  # ...until the writer flushes them, in one transaction
    # The same denied question asked again in the window is one event that counts them.
    written = [(e.properties["feature"], e.properties["count"]) for e in _events(db, "access.denied")]
    assert written == [("sso", 3), ("audit_log", 1)]
    assert access.flush_denials() == 0
    access.check("acme", "sso")  # a new window: a new event
    assert access.flush_denials() == 1
    assert [e.properties["count"] for e in _events(db, "access.denied")] == [3, 1, 1]


def test_a_failed_denial_flush_keeps_its_rows_for_the_next(
    world: tuple[Database, TestClock, AccessService], monkeypatch: pytest.MonkeyPatch
) -> None:
    import engine.access.service as service

    db, clock, _ = world
    access = AccessService(db, clock, access_readers(), AccessView(ttl=60), denial_buffer_seconds=0.05)
    access.check("acme", "sso")
    real = service.add_events

    def broken(*_: object, **__: object) -> int:
        raise RuntimeError("database went away")

    monkeypatch.setattr(service, "add_events", broken)
    with pytest.raises(RuntimeError):
        access.flush_denials()
    access.check("acme", "audit_log")
    access.check("acme", "sso")  # folds into the put-back entry, which keeps its first time
    monkeypatch.setattr(service, "add_events", real)
    assert access.flush_denials() == 3  # the failed batch first, then the new denials
    written = [(e.properties["feature"], e.properties["count"]) for e in _events(db, "access.denied")]
    assert written == [("sso", 2), ("audit_log", 1)]


def test_ingestion_publishes_one_usage_recorded_per_batch_and_none_for_repeats(
    world: tuple[Database, TestClock, AccessService],
) -> None:
    db, clock, _ = world
    with db.session() as s:
        sales.create_customer(s, {"id": "beta", "name": "Beta", "email": "b@beta.test"}, clock=clock)
    batch = [*_calls(3, 0, clock.now()), {**_calls(1, 0, clock.now())[0], "customer_id": "beta", "id": "b_1"}]
    batch.append(dict(batch[0]))  # the same id twice in one batch: one row, counted once
    with db.session() as s:
        assert sales.ingest_events(s, batch, clock=clock).accepted == 4
    (recorded,) = _events(db, "usage.recorded")  # one per batch, naming its customers
    assert recorded.customer_id is None
    assert recorded.properties == {"customers": {"acme": 3, "beta": 1}, "events": 4}
    with db.session() as s:  # the same batch again changes no usage: nothing is published
        assert sales.ingest_events(s, batch, clock=clock).accepted == 0
    assert len(_events(db, "usage.recorded")) == 1
    with db.session() as s:  # one new event among repeats: counted alone, and for its customer
        sales.ingest_events(s, batch + _calls(1, 500, clock.now()), clock=clock)
    last = _events(db, "usage.recorded")[-1]
    assert (last.customer_id, last.properties) == ("acme", {"customers": {"acme": 1}, "events": 1})


def test_usage_ingested_by_another_process_reaches_the_cached_decision_through_the_outbox(
    world: tuple[Database, TestClock, AccessService],
) -> None:
    db, clock, _ = world
    access = AccessService(db, clock, access_readers(), AccessView(ttl=3600))
    assert access.check("acme", "api").used == 0  # cached now, for an hour
    access.start_following()
    with db.session() as s:  # another process: this one's view is not told directly
        sales.ingest_events(s, _calls(1000, 0, clock.now()), clock=clock)
    assert access.check("acme", "api").allowed  # still the cached snapshot...
    assert access.follow_once() == 1  # ...until the follower reads the outbox
    denied = access.check("acme", "api")
    assert (denied.allowed, denied.reason, denied.used) == (False, "quota_exceeded", D(1000))


DAILY = """
catalog: daily-co
currency: USD
metrics:
  api_calls: {event: api.request, aggregation: count}
features:
  api: {name: API calls, type: metered, metric: api_calls}
plans:
  daily:
    name: Daily
    interval: month
    prices: []
    entitlements:
      api: {limit: 5, period: day, overage: block}
"""


def test_a_daily_quota_starts_again_at_midnight_with_a_long_lived_snapshot(db: Database, tmp_path) -> None:  # type: ignore[no-untyped-def]
    clock = TestClock(datetime(2026, 11, 2, 22, tzinfo=UTC))
    (tmp_path / "daily.yaml").write_text(DAILY)
    with db.session() as s:
        sales.publish_catalog(s, tmp_path / "daily.yaml", "test", clock=clock)
        sales.create_customer(s, {"id": "day", "name": "Day", "email": "d@day.test"}, clock=clock)
        sales.create_subscription(s, "day", "daily", clock=clock)
        sales.ingest_events(
            s,
            [
                {"id": f"d{i}", "type": "api.request", "customer_id": "day", "time": clock.now().isoformat()}
                for i in range(5)
            ],
            clock=clock,
        )
    access = AccessService(db, clock, access_readers(), AccessView(ttl=3600))
    assert access.check("day", "api").reason == "quota_exceeded"
    clock.set(datetime(2026, 11, 2, 23, 59, tzinfo=UTC))
    assert access.check("day", "api").reason == "quota_exceeded"  # 23:59, the same day
    clock.set(datetime(2026, 11, 3, tzinfo=UTC))  # midnight: nothing invalidated it, the window ended
    fresh = access.check("day", "api")
    assert (fresh.allowed, fresh.used, fresh.remaining) == (True, D(0), D(5))
    assert access.check_cached("day", "api") is not None  # and the new snapshot is cached


def test_new_usage_reloads_only_the_usage_and_a_plan_change_still_reloads_everything(
    world: tuple[Database, TestClock, AccessService],
) -> None:
    from sqlalchemy import event

    db, clock, _ = world
    access = AccessService(db, clock, access_readers(), AccessView(ttl=3600))
    assert access.check("acme", "api").used == 0
    statements: list[str] = []

    def seen(_conn, _cursor, statement, *_):  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", seen)
    try:
        with db.session() as s:
            sales.ingest_events(s, _calls(1000, 0, clock.now()), clock=clock)
        access.usage_changed(["acme"])
        statements.clear()
        denied = access.check("acme", "api")
        assert (denied.reason, denied.used) == ("quota_exceeded", D(1000))  # the new usage...
        read = " ".join(statements)
        assert "sales_usage_events" in read  # ...read again, and nothing else
        assert "sales_customers" not in read and "sales_subscriptions" not in read
        with db.session() as s:  # a plan change after new usage: the whole snapshot again
            sales.change_subscription(s, "sub_acme", clock=clock, plan="pro")
        access.usage_changed(["acme"])
        access.invalidate("acme")
        statements.clear()
        upgraded = access.check("acme", "api")
        assert (upgraded.allowed, upgraded.plan) == (True, "pro")
        assert "sales_subscriptions" in " ".join(statements)
    finally:
        event.remove(db.engine, "before_cursor_execute", seen)
