"""What an accountant closing the month meets after the books' first cut (issue 21, docs/books.md),
over HTTP on the shared test clock, read through `GET /v1/books/journal` (and the revenue report)
and ending with the ledger checker: a refund gives back its tax; an operator's void of a pack's
grant is breakage; a credit note on a pack's own invoice gives its deferral back; a void of an
invoice an overpayment paid in part gives that credit back. Hand-computed for a DE customer (19 %)
on the Basic plan (5.00 + 0.95 tax = 5.95) and the "lasting" pack (10.00 of credit for 9.00 + 1.71
tax = 10.71) of test_credits_books' catalog."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from tests.journeys.harness import Engine, money
from tests.journeys.test_books_journey import balances
from tests.journeys.test_credits_books import _entries, _publish
from tests.journeys.test_journeys import CARD_OK, card

D = Decimal
BREAKAGE = "revenue:credits:one_time"


def _basic(engine: Engine, tmp_path: Path, name: str, **extra: object) -> tuple[str, str]:
    tag = _publish(engine, tmp_path)
    cid = engine.customer(name)
    engine.subscribe(cid, f"basic-{tag}", **extra)
    engine.advance("1h")
    return tag, cid


def test_refunds_give_back_their_tax_and_a_full_refund_all_of_it(engine: Engine, tmp_path: Path) -> None:
    """5.95 paid by card, refunded in three parts, 0.50, 2.60 and 2.85. Each refund's tax is the
    invoice's share of what is refunded so far, half-even, less what earlier refunds gave back:
    round(0.50 x 0.95 / 5.95 = 0.0798) = 0.08; round(3.10 x 0.95 / 5.95 = 0.4950) = 0.49, so 0.41;
    the last the rest, 0.95 - 0.49 = 0.46. (Each rounded on its own: 0.08 + 0.42 + 0.46 = 0.96, a
    cent more than was collected.) The credit notes say the same; each refund entry is Dr refunds
    (net) and Dr tax_payable / Cr the card's cash; the invoice's tax is all given back."""
    tag, cid = _basic(engine, tmp_path, "books_refund_tax", payment_method=card(CARD_OK))
    [invoice] = engine.invoices(cid)
    assert (money(invoice["total"]), money(invoice["tax"]), invoice["status"]) == (D("5.95"), D("0.95"), "paid")
    notes = []
    for amount in ("0.50", "2.60", "2.85"):
        done = engine.post(f"/v1/invoices/{invoice['id']}/refunds", {"amount": amount}, status=201)
        notes.append((money(done["credit_note"]["subtotal"]), money(done["credit_note"]["tax"])))
    assert notes == [(D("0.42"), D("0.08")), (D("2.19"), D("0.41")), (D("2.39"), D("0.46"))]
    engine.settle()
    entries = _entries(engine, {invoice["id"]})
    refunds = sorted((balances({k: v}) for k, v in entries.items() if k.startswith("refund:")),
                     key=lambda b: -b["cash:sandbox"])
    assert refunds == [{"refunds": net, "tax_payable:DE": tax, "cash:sandbox": -(net + tax)} for net, tax in notes]
    # The invoice's 0.95 of tax all given back; its 5.00 of revenue offset by refunds; no cash.
    left = balances(entries)
    assert left == {f"revenue:basic-{tag}:subscription": D("-5.00"), "refunds": D("5.00")}, left
