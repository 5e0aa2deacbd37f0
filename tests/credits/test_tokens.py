"""Token wallets in the library, on both backends (docs/credits.md, Token wallets): usage of the
catalog's burning metrics burns tokens at their rates as `usage.recorded` is handled, once
whatever redelivers it, never below zero (what is left owed is paid by the next grant), with
`credits.consumed` for the journal and `credits.balance_low` / `credits.exhausted`; the access
decision's `credits_exhausted`; a token grant in an unknown unit or of zero refused."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from engine import credits, sales
from engine.access import AccessService, AccessView, Snapshot, plan_decision
from engine.clock import TestClock
from engine.sales.errors import Conflict
from engine.store import Database
from engine.store.outbox import OutboxEvent
from engine.system import access_readers
from tests.concurrency import at_once

T0 = datetime(2026, 3, 1, 9, tzinfo=UTC)
D = Decimal
CATALOG = """\
catalog: tokens
currency: USD
metrics:
  llm: {event: llm.call, aggregation: sum, field: tokens}
  images: {event: image.made, aggregation: count}
features:
  llm: {name: LLM, type: metered, metric: llm}
plans:
  stop:
    name: Stop
    interval: month
    prices:
      - {id: base, model: flat, amount: "5.00"}
    entitlements:
      llm: {limit: null, period: month, overage: allow}
    credits: {on_exhausted: hard_stop}
credits:
  unit: tokens
  rate: "0.002"
  burn: {llm: "1", images: "2.5"}
  packs:
    small: {price: "3.00", credit: "1000", rollover: all}
"""


def _setup(db: Database, tmp_path: Path, clock: TestClock) -> str:
    path = tmp_path / "tokens.yaml"
    path.write_text(CATALOG)
    with db.session() as s:
        sales.publish_catalog(s, str(path), "test", clock=clock)
        sales.create_customer(s, {"id": "cus_t", "email": "t@example.com", "name": "T", "country": "US"}, clock=clock)
        sales.create_subscription(s, "cus_t", "stop", clock=clock)
    return "cus_t"


def _grant(db: Database, clock: TestClock, amount: str, key: str) -> None:
    with db.session() as s:
        sales.grant_credit(s, "cus_t", {"amount": D(amount), "unit": "tokens", "reason": "test", "idempotency_key": key},
                           clock=clock)


def _usage(db: Database, clock: TestClock, tag: str, *events: tuple[str, dict[str, object]]) -> dict[str, object]:
    """Ingest `events` (type, properties); the usage.recorded the batch published."""
    with db.session() as s:
        sales.ingest_events(s, [{"id": f"{tag}{i}", "type": t, "customer_id": "cus_t", "time": clock.now().isoformat(),
                                 "properties": p} for i, (t, p) in enumerate(events)], clock=clock)
        row = s.scalars(select(OutboxEvent).where(OutboxEvent.type == "usage.recorded")
                        .order_by(OutboxEvent.seq.desc())).first()
        assert row is not None
        return {"id": row.id, "type": row.type, "customer_id": row.customer_id, "time": clock.now().isoformat(),
                "properties": row.properties}


def _burn(db: Database, event: dict[str, object]) -> int:
    with db.session() as s:
        return sales.handle_token_burn(s, event)


def _balance(db: Database, clock: TestClock) -> str:
    with db.session() as s:
        [row] = [b for b in credits.wallet(s, "cus_t", clock.now())["balances"] if b["unit"] == "tokens"]
        return str(row["balance"])


def _said(db: Database, etype: str) -> list[dict[str, object]]:
    with db.session() as s:
        return [dict(r.properties or {}) for r in s.scalars(select(OutboxEvent).where(OutboxEvent.type == etype)
                                                            .order_by(OutboxEvent.seq))]


def _decision(db: Database, clock: TestClock) -> tuple[bool, str]:
    with db.session() as s:
        found = sales.customer_plan(s, "cus_t")
        assert found is not None
        sub, catalog, plan = found
        left = sales.spendable(s, "cus_t", catalog, plan, None, clock.now())
    snap = Snapshot(customer_id="cus_t", known=True, subscription=sub, catalog=catalog, plan=plan, spendable=left)
    d = plan_decision(snap, "llm", 1, clock.now())
    return d.allowed, d.reason


def test_usage_burns_tokens_once_never_below_zero(db: Database, tmp_path: Path) -> None:
    clock = TestClock(T0)
    _setup(db, tmp_path, clock)
    assert _decision(db, clock) == (False, "credits_exhausted")  # no tokens
    _grant(db, clock, "1000", "g1")
    assert _decision(db, clock) == (True, "plan")
    event = _usage(db, clock, "a", ("llm.call", {"tokens": 300}), ("image.made", {}), ("image.made", {}))
    # Before the bus burns them, the access view counts them already: 1000 - 300 - 2 x 2.5 = 695.
    with db.session() as s:
        found = sales.customer_plan(s, "cus_t")
        assert found is not None
        assert sales.spendable(s, "cus_t", found[1], found[2], None, clock.now()) == D(695)
    assert [_burn(db, event) for _ in range(2)] == [1, 0]  # delivered, then redelivered: burned once
    assert _balance(db, clock) == "695"
    [consumed] = _said(db, "credits.consumed")
    assert (consumed["amount"], consumed["used_before"], consumed["unit"]) == ("305", "0", "tokens")
    assert _said(db, "credits.exhausted") == []

    _burn(db, _usage(db, clock, "b", ("llm.call", {"tokens": 700})))  # 5 more than is left
    assert _balance(db, clock) == "0"
    assert _decision(db, clock) == (False, "credits_exhausted")
    assert [e["amount"] for e in _said(db, "credits.consumed")] == ["305", "695"]
    assert _said(db, "credits.exhausted") == [{"unit": "tokens", "amount": "0", "threshold": None}]

    _grant(db, clock, "100", "g2")
    with db.session() as s:  # the bus's credits.granted: the 5 owed are paid first
        assert len(sales.burn_tokens(s, "cus_t", clock.now())) == 1
    assert _balance(db, clock) == "95"
    assert _decision(db, clock) == (True, "plan")
    with db.session() as s:
        assert credits.burned(s, "cus_t", "tokens") == D(1005)


def _asked(db: Database) -> Decimal:
    """What the customer's usage asks of the wallet, as the burn and the access view read it."""
    with db.session() as s:
        found = sales.customer_plan(s, "cus_t")
        assert found is not None and found[1].tokens is not None
        return sales.token_usage(s, "cus_t", found[1], found[1].tokens.burn)


def test_usage_before_the_wallet_is_counted_once_then_kept_as_ingested(db: Database, tmp_path: Path) -> None:
    """Events sent before the customer held a wallet are owed: the first burn counts them
    from the history, once; later batches (replays among them) add to the running total."""
    clock = TestClock(T0)
    _setup(db, tmp_path, clock)
    _usage(db, clock, "pre", ("llm.call", {"tokens": 40}), ("image.made", {}))  # no wallet yet: 42.5 owed
    _grant(db, clock, "1000", "g1")
    with db.session() as s:  # the bus's credits.granted
        assert len(sales.burn_tokens(s, "cus_t", clock.now())) == 1
    assert _balance(db, clock) == "957.5"
    event = _usage(db, clock, "a", ("llm.call", {"tokens": 100}), ("llm.call", {"tokens": 0.5}))
    with db.session() as s:  # the same ids again, and one new: only the new one adds
        sales.ingest_events(s, [{"id": f"a{i}", "type": "llm.call", "customer_id": "cus_t",
                                 "time": clock.now().isoformat(), "properties": {"tokens": t}}
                                for i, t in enumerate((100, 0.5, 7))], clock=clock)
    assert _asked(db) == D("150.0")  # 40 + 2.5 + 100 + 0.5 + 7
    assert _burn(db, event) == 1
    assert _balance(db, clock) == "850"
    assert _burn(db, event) == 0


def test_two_workers_burning_at_once_burn_once(db: Database, tmp_path: Path) -> None:
    """Two consumers handling the same usage.recorded (or two batches' events) at once: the
    tokens are burned once, and the running total counted the history once."""
    clock = TestClock(T0)
    _setup(db, tmp_path, clock)
    _usage(db, clock, "pre", ("llm.call", {"tokens": 10}))  # before the wallet: the total is counted by a burn
    _grant(db, clock, "1000", "g1")
    event = _usage(db, clock, "a", ("llm.call", {"tokens": 300}), ("image.made", {}))
    errors = at_once(lambda: _burn(db, event))
    assert errors == []
    assert _balance(db, clock) == "687.5"  # 1000 - 10 - 300 - 2.5
    assert [e["amount"] for e in _said(db, "credits.consumed")] == ["312.5"]
    assert _asked(db) == D("312.5")


def test_usage_burning_below_the_top_up_threshold_buys_one_pack(db: Database, tmp_path: Path) -> None:
    """The automatic top-up is asked for when usage burns the wallet below its threshold (not
    only when an invoice finalizes); never twice: every ask before the pack is bought carries
    the same key, and the pack bought (pending until paid) lifts the balance above it."""
    clock = TestClock(T0)
    _setup(db, tmp_path, clock)
    _grant(db, clock, "1000", "g1")
    with db.session() as s:
        sales.set_top_up(s, "cus_t", enabled=True, threshold=D(200), pack="small", clock=clock)
    _burn(db, _usage(db, clock, "a", ("llm.call", {"tokens": 700})))  # 300 left: above 200
    assert _said(db, "credits.top_up_requested") == []
    below = _usage(db, clock, "b", ("llm.call", {"tokens": 150}))
    assert [_burn(db, below) for _ in range(2)] == [1, 0]  # 150 left; the redelivery burns and asks nothing
    _burn(db, _usage(db, clock, "c", ("llm.call", {"tokens": 10})))  # asked again before the bus bought it
    asks = _said(db, "credits.top_up_requested")
    assert [(a["pack"], a["key"]) for a in asks] == [("small", "auto:1"), ("small", "auto:1")]
    for ask in asks:  # the sales consumer handles both: one purchase under the key
        with db.session() as s:
            sales.handle_top_up_requested(s, {"customer_id": "cus_t", "time": clock.now(), "properties": ask})
    _burn(db, _usage(db, clock, "d", ("llm.call", {"tokens": 40})))  # 100 left, 1000 bought: no new ask
    assert len(_said(db, "credits.top_up_requested")) == 2
    with db.session() as s:
        packs = [g for g in credits.wallet(s, "cus_t", clock.now())["grants"] if g["source"] == "top_up"]
    assert [(g["status"], str(g["amount"])) for g in packs] == [("pending", "1000")]


def test_a_token_grant_in_an_unknown_unit_or_of_zero_is_refused(db: Database, tmp_path: Path) -> None:
    clock = TestClock(T0)
    _setup(db, tmp_path, clock)
    with db.session() as s, pytest.raises(Conflict) as info:
        sales.grant_credit(s, "cus_t", {"amount": D(10), "unit": "credits", "reason": "x"}, clock=clock)
    assert (info.value.field, str(info.value.message)) == (
        "unit", "unknown unit 'credits': the customer's catalog's custom unit is tokens")
    with db.session() as s, pytest.raises(credits.CreditsError) as bad:
        sales.grant_credit(s, "cus_t", {"amount": D(0), "unit": "tokens", "reason": "x"}, clock=clock)
    assert bad.value.field == "amount"
    with db.session() as s:
        assert credits.wallet(s, "cus_t", clock.now())["grants"] == []


def test_the_watcher_reloads_a_usage_batch_s_hard_stop_customers_with_one_wallet_ask(
    db: Database, tmp_path: Path
) -> None:
    """After a usage batch the access watcher reads the batch's stale snapshots again at once
    (docs/credits.md, Performance): one wallet ask for all of them, each customer's own
    figure, the decision right before any burn."""
    clock = TestClock(T0)
    _setup(db, tmp_path, clock)
    with db.session() as s:
        sales.create_customer(s, {"id": "cus_u", "email": "u@example.com", "name": "U", "country": "US"}, clock=clock)
        sales.create_subscription(s, "cus_u", "stop", clock=clock)
        for cid, amount in (("cus_t", "1000"), ("cus_u", "200")):
            sales.grant_credit(s, cid, {"amount": D(amount), "unit": "tokens", "reason": "test"}, clock=clock)
    asks: list[list[str]] = []
    readers = access_readers()

    def spendable(session: Any, batch: Any, now: datetime) -> Any:
        asks.append(sorted(a[0] for a in batch))
        return readers.spendable(session, batch, now)

    access = AccessService(db, clock, dataclasses.replace(readers, spendable=spendable), AccessView(ttl=60))
    assert [access.check(c, "llm").allowed for c in ("cus_t", "cus_u")] == [True, True]
    with db.session() as s:
        sales.ingest_events(s, [{"id": f"w{c}", "type": "llm.call", "customer_id": c, "time": clock.now().isoformat(),
                                 "properties": {"tokens": 300}} for c in ("cus_t", "cus_u")], clock=clock)
    access.usage_changed(["cus_t", "cus_u"])
    asks.clear()
    assert access.announce_thresholds() == 2
    assert asks == [["cus_t", "cus_u"]]  # one ask for the batch, not one per customer
    assert [access.snapshot(c).spendable for c in ("cus_t", "cus_u")] == [D(700), D(-100)]
    assert (access.check("cus_u", "llm").reason, asks) == ("credits_exhausted", [["cus_t", "cus_u"]])  # cached


def test_a_money_wallet_s_figure_is_at_the_currency_s_minor_unit(db: Database) -> None:
    """PostgreSQL's NUMERIC(24,8) reads 104.10000000: the wallet says 104.10 (what the access
    snapshot's `spendable` shows), and a grant finer than the minor unit keeps its places."""
    with db.session() as s:
        credits.add_grant(s, credits.GrantRequest("cus_m", "USD", D("104.10"), "operator", T0), T0)
        credits.add_grant(s, credits.GrantRequest("cus_f", "USD", D("0.125"), "operator", T0), T0)
    with db.session() as s:
        assert str(credits.available_total(s, "cus_m", "USD", T0)) == "104.10"
        assert {c: str(v) for c, v in credits.available_totals(s, ["cus_m", "cus_f"], "USD", T0).items()} == {
            "cus_m": "104.10", "cus_f": "0.125"}


def test_a_token_wallet_says_its_balance_is_low_below_the_catalog_s_level_in_tokens(
    db: Database, tmp_path: Path
) -> None:
    """`credits.low_balance: "400"` (tokens): burning 1000 down to 300 says balance_low once,
    in tokens; the customer's budget's `low_balance` (money, 5000.00) is no token level."""
    clock = TestClock(T0)
    path = tmp_path / "tokens.yaml"
    path.write_text(CATALOG.replace('  rate: "0.002"\n', '  rate: "0.002"\n  low_balance: "400"\n'))
    with db.session() as s:
        sales.publish_catalog(s, str(path), "test", clock=clock)
        sales.create_customer(s, {"id": "cus_t", "email": "t@example.com", "name": "T", "country": "US"}, clock=clock)
        sales.create_subscription(s, "cus_t", "stop", clock=clock)
        sales.set_budget(s, "cus_t", {"amount": "10000.00", "low_balance": "5000.00"}, clock=clock)
    _grant(db, clock, "1000", "g1")
    _burn(db, _usage(db, clock, "a", ("llm.call", {"tokens": 500})))
    assert _said(db, "credits.balance_low") == []  # 500 left: not below 400 (nor compared with 5000.00)
    event = _usage(db, clock, "b", ("llm.call", {"tokens": 200}))
    assert [_burn(db, event) for _ in range(2)] == [1, 0]
    assert _said(db, "credits.balance_low") == [{"unit": "tokens", "amount": "300", "threshold": "400"}]
    _burn(db, _usage(db, clock, "c", ("llm.call", {"tokens": 100})))
    assert len(_said(db, "credits.balance_low")) == 1  # once per episode


def _rows_read(db: Database, work: Any) -> int:
    """The rows every SELECT of `work(session)` returned (what the database handed back)."""
    from sqlalchemy import event

    read = [0]
    with db.session() as s:
        def count(state: Any) -> Any:
            if not state.is_select:
                return None
            frozen = state.invoke_statement().freeze()
            read[0] += len(frozen().all())
            return frozen()

        event.listen(s, "do_orm_execute", count)
        work(s)
        s.commit()
    return read[0]


def test_the_burn_and_the_access_figure_do_not_read_more_with_every_burn(db: Database, tmp_path: Path) -> None:
    """What usage burned is kept on the grants (migration 0018): the tenth burn reads what the
    second did, not one more entry per earlier burn; so does the access view's reload."""
    clock = TestClock(T0)
    _setup(db, tmp_path, clock)
    _grant(db, clock, "100000", "g1")
    burns, reloads = [], []
    for i in range(10):
        event = _usage(db, clock, f"r{i}", ("llm.call", {"tokens": 10}))
        burns.append(_rows_read(db, lambda s, e=event: sales.handle_token_burn(s, e)))
        reloads.append(_rows_read(db, lambda s: sales.spendable(s, "cus_t", *_catalog_plan(s), None, clock.now())))
    assert _balance(db, clock) == "99900"  # ten burns of 10
    assert burns[1:] == [burns[1]] * 9
    assert reloads[1:] == [reloads[1]] * 9


def _catalog_plan(s: Any) -> tuple[Any, Any]:
    found = sales.customer_plan(s, "cus_t")
    assert found is not None
    return found[1], found[2]


def _statements(db: Database, work: Any) -> list[str]:
    """The SQL of every statement `work(session)` sent, its commit's included (BEGIN on SQLite)."""
    from sqlalchemy import event

    sent: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        with db.session() as s:
            work(s)
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    return sent


def _batch_costs(db: Database, clock: TestClock, n: int) -> tuple[list[str], list[str], list[str]]:
    """`n` customers holding token wallets and `n` without: the statements of ingesting a batch
    of each, and of burning the holders' (the bus's sales consumer on its usage.recorded)."""
    with db.session() as s:
        for i in range(n):
            for cid in (f"h{n}-{i}", f"p{n}-{i}"):
                sales.create_customer(
                    s, {"id": cid, "email": f"{cid}@example.com", "name": cid, "country": "US"}, clock=clock
                )
                sales.create_subscription(s, cid, "stop", clock=clock)
            sales.grant_credit(s, f"h{n}-{i}", {"amount": D(10**6), "unit": "tokens", "reason": "test"}, clock=clock)

    def batch(prefix: str, tag: str) -> list[dict[str, object]]:
        return [
            {
                "id": f"{tag}{prefix}{n}-{i}",
                "type": "llm.call",
                "customer_id": f"{prefix}{n}-{i}",
                "time": clock.now().isoformat(),
                "properties": {"tokens": 3},
            }
            for i in range(n)
        ]

    def recorded(result: Any) -> dict[str, object]:
        return {
            "id": result.recorded_event_id,
            "type": "usage.recorded",
            "time": clock.now().isoformat(),
            "properties": {"customers": {f"h{n}-{i}": 1 for i in range(n)}},
        }

    with db.session() as s:  # the first burn counts the history, once
        sales.handle_token_burn(s, recorded(sales.ingest_events(s, batch("h", "w"), clock=clock)))
    plain = _statements(db, lambda s: sales.ingest_events(s, batch("p", "u"), clock=clock))
    ingested: list[Any] = []
    holders = _statements(db, lambda s: ingested.append(sales.ingest_events(s, batch("h", "u"), clock=clock)))
    burn = _statements(db, lambda s: sales.handle_token_burn(s, recorded(ingested[0])))
    return plain, holders, burn


def test_a_usage_batch_s_token_burn_costs_the_same_statements_whatever_its_size(db: Database, tmp_path: Path) -> None:
    """docs/credits.md, Performance: ingesting a batch of token-wallet holders costs one
    statement more than a batch of customers without a wallet (the totals' upsert; SQLite reads
    the totals and writes them: two), the burn of the batch seven statements (and SQLite's
    BEGIN), for 3 customers as for 12; on PostgreSQL the writes' SQL is the same text for both
    sizes (the rows go as arrays: nothing to build, send and parse anew for each size)."""
    clock = TestClock(T0)
    _setup(db, tmp_path, clock)
    pg = db.engine.dialect.name == "postgresql"
    small, large = _batch_costs(db, clock, 3), _batch_costs(db, clock, 12)
    for plain, holders, burn in (small, large):
        assert len(holders) - len(plain) == (1 if pg else 2)
        assert len(burn) == (7 if pg else 8), "\n".join(s[:70] for s in burn)
    if pg:

        def writes(sent: list[str]) -> list[str]:
            return [s for s in sent if s.lstrip().startswith(("INSERT", "UPDATE"))]

        assert [writes(small[i]) for i in (1, 2)] == [writes(large[i]) for i in (1, 2)]
    with db.session() as s:
        assert credits.burned(s, "h12-0", "tokens") == D(6)  # two batches of 3 tokens each


def test_a_catalog_grant_in_a_token_catalog_is_granted_in_tokens(db: Database, tmp_path: Path) -> None:
    """A catalog grant's amount is in the catalog wallet's unit: a rule's `grant_credit` or an
    operator naming `grant: welcome` in a token catalog grants 500 tokens, not 500 dollars."""
    clock = TestClock(T0)
    path = tmp_path / "tokens.yaml"
    path.write_text(CATALOG + "  grants:\n    welcome: {amount: \"500\", rollover: all}\n")
    with db.session() as s:
        sales.publish_catalog(s, str(path), "test", clock=clock)
        sales.create_customer(s, {"id": "cus_t", "email": "t@example.com", "name": "T", "country": "US"}, clock=clock)
        sales.create_subscription(s, "cus_t", "stop", clock=clock)
        granted = sales.grant_credit(s, "cus_t", {"grant": "welcome", "reason": "welcome"}, clock=clock)
    assert (granted["unit"], str(granted["amount"])) == ("tokens", "500")
    assert _balance(db, clock) == "500"
    with db.session() as s:  # nothing in dollars
        assert [b["unit"] for b in credits.wallet(s, "cus_t", clock.now())["balances"]] == ["tokens"]
