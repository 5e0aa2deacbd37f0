"""A credit note that takes a wallet below its automatic top-up threshold buys the top-up, once
(issue 20: "automatic top-up when the balance falls below a threshold ... never twice"), over
HTTP on the shared test clock, ending with the ledger checker. On the Basic plan and the
"lasting" pack of test_credits_books' catalog (10.00 of credit for 9.00 + 1.71 tax = 10.71,
paid by card), with a top-up at 8.00 buying that pack: a 2.38 credit note on the pack's invoice
(net 2.00) takes back 2.00 x 10.00 / 9.00 = 2.22, leaving 7.78 below 8.00, so one more pack is
invoiced (10.71: the note's 2.38 on the customer's balance, 8.33 by card): 17.78. The note's events and the top-up's request
delivered again buy nothing more; a second note (1.19, net 1.00: 1.11 taken) leaves 16.67, above
the threshold, and buys nothing. Hand-computed for a DE customer (19 %)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from tests.journeys.harness import Engine, money, redeliver
from tests.journeys.test_books_closing import _basic
from tests.journeys.test_credits import wallet
from tests.journeys.test_credits_books import _buy
from tests.journeys.test_journeys import CARD_OK, card

D = Decimal


def _packs(engine: Engine, cid: str) -> list[tuple[Decimal, str]]:
    return [(money(i["total"]), i["status"]) for i in engine.invoices(cid) if i["reason"] == "charge"]


def test_a_credit_note_below_the_threshold_buys_the_top_up_once(engine: Engine, tmp_path: Path) -> None:
    _, cid = _basic(engine, tmp_path, "credit_note_top_up", payment_method=card(CARD_OK))
    bought = _buy(engine, cid, "lasting")
    pack_invoice = bought["invoice"]
    engine.advance("1h")  # the pack's 10.71 collected by card: 10.00 of credit
    r = engine.product.put(
        f"/v1/customers/{cid}/wallet/top_up", json={"enabled": True, "threshold": "8.00", "pack": "lasting"}
    )
    assert r.status_code == 200, r.text
    assert _packs(engine, cid) == [(D("10.71"), "paid")]

    engine.post(f"/v1/invoices/{pack_invoice['id']}/credit_notes", {"amount": "2.38", "reason": "goodwill"}, status=201)
    engine.advance("1h")  # 7.78 < 8.00: the top-up pack bought on the bus and collected by card
    assert _packs(engine, cid) == [(D("10.71"), "paid"), (D("10.71"), "paid")]
    [usd] = wallet(engine, cid)["balances"]
    assert (usd["available"], usd["pending"]) == ("17.78", "0.00")
    top_up = [g for g in wallet(engine, cid)["grants"] if g["source"] == "top_up"]
    assert [(g["amount"], g["status"]) for g in top_up] == [("10.00", "active")]
    # The top-up's 10.71 takes the note's 2.38 (credited to the customer's balance) first: 8.33 by card.
    assert sorted(money(c["amount"]) for c in engine.charges(cid)) == [D("5.95"), D("8.33"), D("10.71")]

    redeliver(engine, cid, ("credit_note.issued", "credits.reduced", "credits.top_up_requested"))
    assert len(_packs(engine, cid)) == 2

    engine.post(f"/v1/invoices/{pack_invoice['id']}/credit_notes", {"amount": "1.19", "reason": "goodwill"}, status=201)
    engine.advance("1h")  # 16.67, above the threshold: nothing bought
    assert len(_packs(engine, cid)) == 2
    assert wallet(engine, cid)["balances"][0]["available"] == "16.67"
