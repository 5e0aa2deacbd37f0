"""Credit a void gives back to a grant that is no longer active (issues 20/21, docs/credits.md
*Invoices and the wallet*, docs/books.md *Prepaid credit*), over HTTP on the shared test clock,
read through the wallet and `GET /v1/books/journal`, ending with the ledger checker. Nothing
expires, voids or draws such a grant any more, so the credit is taken again at once (an
`expiry` entry for a grant past its expiry, a `void` entry for a voided one) and the journal
earns the pack's share as breakage instead of deferring it for ever.

Hand-computed for a DE customer (19 %) on a 20.00 monthly plan (23.80 with tax) and the "mini"
pack: 10.00 of credit for 9.00 (+ 1.71 tax, 10.71), expiring 10 days after it is bought."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from tests.journeys.harness import Engine, money, redeliver
from tests.journeys.test_books_journey import balances
from tests.journeys.test_credits import grant, kinds, wallet
from tests.journeys.test_credits_books import _buy, _credits_report, _entries
from tests.journeys.test_journeys import CARD_OK, card

D = Decimal
BREAKAGE = "revenue:credits:one_time"

CATALOG = """\
catalog: credits-returned-{tag}
currency: USD
taxes: {{DE: 19}}
metrics: {{}}
plans:
  plus-{tag}:
    name: Plus
    interval: month
    prices:
      - {{id: base, name: Platform, model: flat, amount: "20.00"}}
credits:
  packs:
    mini: {{name: Mini credits, price: "9.00", credit: "10.00", expires_after: 10d, rollover: all}}
"""


def _iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def _when(text: str) -> datetime:
    """An API time; a period's bounds come without an offset and are UTC."""
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _open_renewal_paid_by_a_pack(
    engine: Engine, tmp_path: Path, name: str, *, promo: bool
) -> tuple[str, dict[str, Any], dict[str, Any] | None, dict[str, Any], str]:
    """A Plus customer paying by card buys the mini pack five days before the period ends (the
    card pays its 10.71: 9.00 deferred), then pays by bank transfer. With `promo`, an operator's
    5.00 grant (priority 10, drawn first) expiring 8 days later. The renewal (23.80) takes the
    promotional 5.00 and the pack's 10.00 (its share 9.00 earned, 1.00 its bonus, a discount):
    8.80 left to transfer, the invoice open. (customer, pack, promo, renewal, month sold)"""
    tag = secrets.token_hex(3)
    path = tmp_path / "credits-returned.yaml"
    path.write_text(CATALOG.format(tag=tag))
    engine.publish(path)
    cid = engine.customer(name)
    sub = engine.subscribe(cid, f"plus-{tag}", payment_method=card(CARD_OK))
    engine.advance("1h")
    end = _when(sub["current_period"]["end"])
    engine.post("/v1/clock/advance", {"to": _iso(end - timedelta(days=5))})
    bought = _buy(engine, cid, "mini")
    pack = bought["grant"]
    assert money(bought["invoice"]["total"]) == D("10.71")
    engine.advance("1h")  # the card pays the pack: its credit counts
    sold_in = engine.now()[:7]
    given = None
    if promo:
        given = grant(
            engine,
            cid,
            amount="5.00",
            priority=10,
            reason="welcome",
            expires_at=_iso(_when(engine.now()) + timedelta(days=8)),
        )
    engine.post(
        f"/v1/customers/{cid}/payment_methods",
        {"type": "bank_transfer", "provider": "bank", "default": True},
        status=201,
    )
    engine.post("/v1/clock/advance", {"to": _iso(end + timedelta(hours=1))})
    renewal = next(i for i in engine.invoices(cid) if i["reason"] == "cycle")
    credit = D("15.00") if promo else D("10.00")
    assert (money(renewal["total"]), money(renewal["credit_applied"])) == (D("23.80"), credit), renewal
    assert (renewal["status"], money(renewal["amount_due"])) == ("finalized", D("23.80") - credit)
    return cid, pack, given, renewal, sold_in


def _grant(engine: Engine, cid: str, grant_id: str) -> tuple[str, str]:
    [g] = [x for x in wallet(engine, cid)["grants"] if x["id"] == grant_id]
    return g["status"], g["remaining"]


def test_a_void_after_the_grants_expired_lets_the_returned_credit_lapse(engine: Engine, tmp_path: Path) -> None:
    """Ten days after the renewal both grants are past their expiry: used up, the expiry run marks
    them `expired` (nothing left, no entry). The renewal is voided: sales gives 5.00 and 10.00
    back and, the grants' credit having lapsed, writes an `expiry` entry for each at once:
    nothing to spend, nothing left on either grant. The journal: `credits:returned` defers the
    pack's 9.00 again, and `credits:lapsed` earns it (Dr deferred_revenue 9.00 / Cr
    revenue:credits:one_time 9.00, breakage as an expiry's); the promotional 5.00 deferred
    nothing and posts no lapse. Nothing is left deferred: the report earns the 9.00 the month of
    the void. A redelivered `invoice.voided` changes nothing."""
    cid, pack, promo, renewal, sold_in = _open_renewal_paid_by_a_pack(engine, tmp_path, "returned_expired", promo=True)
    assert promo is not None
    engine.advance("10d")  # both past their expiry: used up, marked expired
    assert _grant(engine, cid, pack["id"]) == ("expired", "0.00")
    assert _grant(engine, cid, promo["id"]) == ("expired", "0.00")
    before = len(kinds(engine, cid))
    engine.post(f"/v1/invoices/{renewal['id']}/void")
    engine.settle()
    assert _grant(engine, cid, pack["id"]) == ("expired", "0.00")
    assert _grant(engine, cid, promo["id"]) == ("expired", "0.00")
    [usd] = wallet(engine, cid)["balances"]
    assert (usd["balance"], usd["available"]) == ("0.00", "0.00")
    after = kinds(engine, cid)
    assert sorted(after[before:]) == [
        ("consumption", "10.00"),
        ("consumption", "5.00"),
        ("expiry", "-10.00"),
        ("expiry", "-5.00"),
    ]

    entries = _entries(engine, {pack["id"], promo["id"], renewal["id"]})
    assert balances({"l": entries[f"credits:lapsed:{renewal['id']}:{pack['id']}"]}) == {
        "deferred_revenue": D("9.00"),
        BREAKAGE: D("-9.00"),
    }
    assert f"credits:lapsed:{renewal['id']}:{promo['id']}" not in entries  # a discount: nothing deferred
    left = balances(entries)
    assert "deferred_revenue" not in left and "customer_credit" not in left and "receivables" not in left, left
    assert left[BREAKAGE] == D("-9.00")
    report = _credits_report(engine, cid, sold_in)
    assert [(m, r) for m, _, r, _ in report if r] == [(engine.now()[:7], D("9.00"))]
    assert (sum(b for _, b, _, _ in report), report[-1][3]) == (D("9.00"), 0)

    redeliver(engine, cid, ("invoice.voided",))
    assert kinds(engine, cid) == after
    assert _entries(engine, {pack["id"], promo["id"], renewal["id"]}) == entries


def test_a_void_after_an_operator_voided_the_pack_takes_the_returned_credit_again(
    engine: Engine, tmp_path: Path
) -> None:
    """The pack used up by the open renewal is voided by an operator (nothing left: no entry,
    nothing deferred to earn). The renewal is then voided: the 10.00 given back is taken again
    at once (a `void` entry naming the invoice), the grant stays void with nothing left, and
    `credits:lapsed` earns the 9.00 `credits:returned` deferred again: nothing is left deferred."""
    cid, pack, _, renewal, sold_in = _open_renewal_paid_by_a_pack(engine, tmp_path, "returned_void", promo=False)
    engine.post(f"/v1/wallet/grants/{pack['id']}/void", {"reason": "abuse"})
    engine.settle()
    assert f"credits:voided:{pack['id']}" not in _entries(engine, {pack["id"]})  # used up: nothing deferred
    engine.post(f"/v1/invoices/{renewal['id']}/void")
    engine.settle()
    assert _grant(engine, cid, pack["id"]) == ("void", "0.00")
    assert kinds(engine, cid)[-2:] == [("consumption", "10.00"), ("void", "-10.00")]
    entries = _entries(engine, {pack["id"], renewal["id"]})
    assert balances({"l": entries[f"credits:lapsed:{renewal['id']}:{pack['id']}"]}) == {
        "deferred_revenue": D("9.00"),
        BREAKAGE: D("-9.00"),
    }
    assert "deferred_revenue" not in balances(entries)
    report = _credits_report(engine, cid, sold_in)
    assert (sum(b for _, b, _, _ in report), report[-1][3]) == (D("9.00"), 0)
