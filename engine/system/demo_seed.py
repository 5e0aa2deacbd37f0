"""The demo data `billing up` seeds into an empty database: the example catalogs and rules,
about 50 customers on a mix of plans with cards (some that decline), and a month of usage,
billed as it would have been (the month is replayed on a test clock, then the live engine
takes over on the real one). Here in engine.system because it joins sales (catalogs,
customers, subscriptions, usage) and payments (the cards) on a system it drives; `billing up`
(engine/cli/commands/up.py) calls it."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from engine import sales
from engine.clock import Clock, TestClock
from engine.config import shipped_dir
from engine.system.assembly import System

# Plans of the SaaS catalog with how many demo customers get them.
MIX = (("free", 18), ("pro", 22), ("enterprise", 4), ("pro-annual", 6))
GOOD_CARD = "4242424242424242"
CARDS = [GOOD_CARD] * 8 + ["4000000000009995", "4000000000000002"]  # some insufficient funds, declines
SEGMENTS = ("smb", "smb", "smb", "edu", "enterprise", "startup")
COUNTRIES = ("CH", "DE", "FR", "GB", "US", "US", "US")
# The seats a subscription of a per-seat plan starts with (drawn between the two); others have none.
SEATS = {"pro": (1, 12), "pro-annual": (1, 12), "enterprise": (10, 80)}


@dataclass
class SeedReport:
    customers: int
    subscriptions: int
    events: int
    catalogs: list[str]
    rulesets: list[str]


def is_seeded(system: System) -> bool:
    with system.db.session() as s:
        return bool(sales.list_versions(s))


def publish_examples(system: System, catalogs_dir: str, rules_dir: str, clock: Clock) -> tuple[list[str], list[str]]:
    from engine.rules import publish_ruleset

    catalogs, rulesets = [], []
    catalog_files = sorted(shipped_dir(catalogs_dir).glob("*.yaml"))
    if not catalog_files:
        raise ValueError(f"{shipped_dir(catalogs_dir)}: no catalogs (*.yaml) to seed the demo with")
    with system.db.session() as s:
        for path in catalog_files:
            catalogs.append(sales.publish_catalog(s, path, "demo", "seeded by billing up", clock=clock).catalog)
        for path in sorted(shipped_dir(rules_dir).glob("*.yaml")):
            rulesets.append(publish_ruleset(s, path, "demo", comment="seeded by billing up", clock=clock).ruleset)
    return catalogs, rulesets


def seed(system: System, now: datetime, *, customers: int = 50, days: int = 30, seed_value: int = 42) -> SeedReport:
    """Seed an empty store. `system` must run on a test clock set `days` before `now`."""
    clock = system.test_clock
    if clock is None:
        raise ValueError("seeding replays the past month on a test clock")
    rng = random.Random(seed_value)
    catalogs, rulesets = publish_examples(system, system.settings.catalogs_dir, system.settings.rules_dir, clock)
    system.sync_rules()
    plans = [plan for plan, count in MIX for _ in range(count)][:customers]
    people: list[tuple[str, str]] = []
    with system.db.session() as s:
        for i, plan in enumerate(plans):
            cid = f"cus_{i + 1:03d}"
            sales.create_customer(
                s,
                {
                    "id": cid,
                    "name": f"Demo Customer {i + 1}",
                    "email": f"billing+{cid}@example.com",
                    "country": rng.choice(COUNTRIES),
                    "segment": rng.choice(SEGMENTS),
                    "tags": ["partner"] if i % 11 == 0 else [],
                },
                clock=clock,
            )
            if system.payments is not None and plan != "free":
                from engine import payments

                payments.add_payment_method(s, cid, "card", rng.choice(CARDS), service=system.payments)
            people.append((cid, plan))
    with system.db.session() as s:
        for cid, plan in people:
            seats = SEATS.get(plan)
            quantity = rng.randint(*seats) if seats is not None else None
            sales.create_subscription(
                s, cid, plan, clock=clock, quantity=quantity, trial_days=0, promotions=system.promotions
            )
    system.drain()
    events = 0
    for day in range(days):
        batch = []
        for cid, plan in people:
            per_day = {
                "free": rng.randint(5, 45),
                "pro": rng.randint(50, 4000),
                "enterprise": rng.randint(2000, 40000),
                "pro-annual": rng.randint(50, 3000),
            }[plan]
            per_day = min(per_day, 90)  # keep the seed quick; free customers still near their quota
            for n in range(per_day):
                at = clock.now() + timedelta(seconds=rng.randint(0, 86_000))
                batch.append(
                    {
                        "id": f"demo_{cid}_{day}_{n}",
                        "type": "api.request",
                        "customer_id": cid,
                        "time": at.isoformat(),
                        "properties": {"endpoint": "/v1/search"},
                    }
                )
        for start in range(0, len(batch), 5000):
            with system.db.session() as s:
                events += sales.ingest_events(s, batch[start : start + 5000], clock=clock).accepted
        system.advance_clock(min(clock.now() + timedelta(days=1), now))
    if clock.now() < now:
        system.advance_clock(now)
    return SeedReport(len(people), len(people), events, catalogs, rulesets)


def replay_clock(now: datetime, days: int) -> TestClock:
    return TestClock(now - timedelta(days=days))
