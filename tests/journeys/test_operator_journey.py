"""The operator's HTTP doors on the shared test clock (issue 19): a catalog published over HTTP,
a new version of it, a grandfathered subscription moved to it over HTTP, then billed at the new
price from its next period on; a rollback makes the old content current again. The ledger
check follows (periods equal quotes, invoices settled, the journal balanced)."""

from __future__ import annotations

import secrets
from decimal import Decimal

from tests.journeys.harness import Engine, money
from tests.journeys.test_journeys import CARD_OK, card


def catalog(tag: str, price: str) -> str:
    return (f"catalog: ops-{tag}\ncurrency: EUR\ntaxes: {{DE: 19}}\nplans:\n  ops{tag}:\n    name: Ops\n"
            f"    interval: month\n    prices:\n      - {{id: base, name: Base fee, model: flat, amount: \"{price}\"}}\n")


def test_a_subscription_moved_to_a_new_version_over_http_is_billed_at_its_price(engine: Engine) -> None:
    tag = secrets.token_hex(3)
    name, plan = f"ops-{tag}", f"ops{tag}"
    v1 = engine.post("/v1/publish", {"documents": [{"file": "ops.yaml", "text": catalog(tag, "10.00")}],
                                     "comment": "launch"}, status=201)
    assert [(p["name"], p["version"]) for p in v1["published"]] == [(name, 1)]
    cid = engine.customer("ops")
    sub = engine.subscribe(cid, plan, payment_method={"type": "card", "token": "4242424242424242"})
    engine.post("/v1/publish", {"documents": [{"file": "ops.yaml", "text": catalog(tag, "12.00")}]}, status=201)
    preview = engine.post(f"/v1/catalogs/{name}/migrations", {"dry_run": True})
    assert [(r["subscription_id"], r["old_amount"], r["new_amount"]) for r in preview["would_migrate"]] == [
        (sub["id"], "10.00", "12.00")]
    moved = engine.post(f"/v1/catalogs/{name}/migrations", {"subscription_ids": [sub["id"]]})
    assert [r["subscription_id"] for r in moved["migrated"]] == [sub["id"]]

    engine.advance("1mo")
    invoices = engine.invoices(cid)
    assert [money(i["subtotal"]) for i in invoices] == [Decimal("10.00"), Decimal("12.00")]
    assert [i["status"] for i in invoices] == ["paid", "paid"]

    rolled = engine.post(f"/v1/catalogs/{name}/rollback", {"to_version": 1, "why": "12 was too much"}, status=201)
    assert (rolled["version"], rolled["restored"]) == (3, 1)
    r = engine.admin.post(f"/v1/catalogs/{name}/rollback", json={"to_version": 3, "why": "again"})
    assert r.status_code == 409 and r.json()["field"] == "to_version"


def test_a_paid_invoice_credited_to_the_balance_is_still_settled(engine: Engine) -> None:
    """Goodwill on a paid invoice (`POST /v1/invoices/{id}/credit_notes`): nothing is left due,
    so all of the credit note goes to the customer's balance and says so, and the invoice stays
    paid. The ledger checker counts the balance's part as the customer's credit, not as a second
    settlement of the invoice (it failed such a journey before the note said where its money went)."""
    cid = engine.customer("goodwill")
    engine.subscribe(cid, "pro", quantity=1, payment_method=card(CARD_OK))
    engine.advance("1h")
    [first] = engine.invoices(cid)
    assert first["status"] == "paid"
    note = engine.post(f"/v1/invoices/{first['id']}/credit_notes", {"amount": "10.00", "reason": "goodwill"},
                       status=201)
    assert (note["total"], note["to_balance"]) == ("10.00", "10.00")
    assert money(engine.get(f"/v1/customers/{cid}")["credit_balance"]) == Decimal("10.00")
    [again] = engine.invoices(cid)
    assert again["status"] == "paid" and [c["to_balance"] for c in again["credit_notes"]] == ["10.00"]
