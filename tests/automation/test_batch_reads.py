"""automation/reads.py: a batch's rows read ahead once; a customer whose event's rules acted
is read again (its dunning state may have changed), the others are not."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from engine.automation.reads import BatchReads


class Store:
    """Records reads over dicts, counting the single reads."""

    default_state = "active"

    def __init__(self) -> None:
        self.states = {"c1": "active", "c2": "warning"}
        self.single = 0

    def customers(self, _s: Any, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        return {i: {"id": i, "attributes": {"locale": "en"}} for i in ids if i in self.states}

    def dunning_states(self, _s: Any, ids: Sequence[str], *, lock: bool) -> dict[str, str]:
        return {i: self.states.get(i, "active") for i in ids}

    def live_subscriptions(self, _s: Any, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        return {}

    invoices = subscriptions = live_subscriptions

    def dunning_state(self, _s: Any, customer_id: str) -> str:
        self.single += 1
        return self.states.get(customer_id, "active")

    def customer(self, _s: Any, customer_id: str) -> dict[str, Any] | None:
        self.single += 1
        return {"id": customer_id, "attributes": {"locale": "en"}}


def _event(cid: str) -> dict[str, Any]:
    return {"id": f"evt_{cid}", "type": "payment.failed", "customer_id": cid, "properties": {}}


def test_rows_read_ahead_until_the_customers_rules_act() -> None:
    store = Store()
    reads = BatchReads(store)  # type: ignore[arg-type]
    reads.prefetch(None, [_event("c1"), _event("c2"), _event("gone")])  # type: ignore[arg-type]
    assert [reads.dunning_state(None, c) for c in ("c1", "c2")] == ["active", "warning"]  # type: ignore[arg-type]
    assert reads.customer(None, "gone") is None  # type: ignore[arg-type]
    assert store.single == 0
    store.states["c1"] = "suspended"  # c1's event's rules acted
    reads.forget("c1")
    assert reads.dunning_state(None, "c1") == "suspended"  # type: ignore[arg-type]
    assert reads.dunning_state(None, "c2") == "warning"  # type: ignore[arg-type]
    assert store.single == 1
    copy = reads.customer(None, "c2")  # type: ignore[arg-type]
    assert copy is not None
    copy["attributes"]["locale"] = "de"  # a context changed: the next read is as stored
    assert reads.customer(None, "c2") == {"id": "c2", "attributes": {"locale": "en"}}  # type: ignore[arg-type]
