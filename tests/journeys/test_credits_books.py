"""Prepaid credit in the journal (issue 20, docs/books.md *Prepaid credit*), over HTTP on the
shared test clock, read through `GET /v1/books/journal` and ending with the ledger checker: a
pack bought is deferred revenue (a liability) until its credit is used or expires; promotional
credit is a discount, never revenue. Hand-computed for a DE customer (19 %)."""

from __future__ import annotations

import secrets
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

from tests.journeys.harness import Engine, money
from tests.journeys.test_books_journey import balances, journal
from tests.journeys.test_credits import grant, kinds, pro_base, pro_total, wallet
from tests.journeys.test_journeys import CARD_OK, card

D = Decimal


def _entries(engine: Engine, references: set[str]) -> dict[str, list[dict[str, str]]]:
    start = date.fromisoformat(engine.now()[:10]) - timedelta(days=70)
    entries = journal(engine, start, references)
    for entry_id, rows in entries.items():
        assert sum(money(r["debit"]) for r in rows) == sum(money(r["credit"]) for r in rows), entry_id
    return entries


def _credits_report(engine: Engine, cid: str, first: str) -> list[tuple[str, Decimal, Decimal, Decimal]]:
    """The revenue report's "credits" rows (month, billed, recognised, deferred) of a customer
    from month `first` to the clock's month (`GET /v1/books/revenue`)."""
    r = engine.admin.get("/v1/books/revenue", params={"from": first, "to": engine.now()[:7], "customer_id": cid})
    assert r.status_code == 200, r.text
    return [(x["month"], money(x["billed"]), money(x["recognised"]), money(x["deferred"]))
            for x in r.json()["items"] if x["plan"] == "credits"]


def _buy(engine: Engine, cid: str, pack: str) -> dict[str, Any]:
    r = engine.product.post(f"/v1/customers/{cid}/wallet/packs", json={"pack": pack, "key": secrets.token_hex(4)})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def test_a_pack_is_deferred_until_used_and_a_promotional_grant_is_a_discount(engine: Engine) -> None:
    """The starter pack, 50.00 of credit for 45.00 (+ 8.55 tax, 53.55): 45.00 deferred. A 10.00
    operator grant (priority 10) and the pack (priority 50) pay the renewal's first 60.00: the
    grant is a 10.00 discount; the pack's 50.00 is its whole 45.00 deferred, earned now, and a
    5.00 discount (its bonus). The wallet's 60.00 leaves customer_credit as it came in."""
    cid = engine.customer("credits_books")
    # Two seats: the renewal (82.11, or 70.45 under the launch promotion the shared clock may
    # stand in) is more than the wallet's 60.00 either way, so the credit drawn does not depend
    # on where the clock is.
    engine.subscribe(cid, "pro", quantity=2, payment_method=card(CARD_OK))
    engine.advance("1h")
    bought = _buy(engine, cid, "starter")
    pack, pack_invoice = bought["grant"], bought["invoice"]
    assert money(pack_invoice["total"]) == D("53.55")
    engine.advance("1h")  # paid by card: the credit counts
    promo = grant(engine, cid, amount="10.00", priority=10, reason="welcome", expires_at="2199-01-01T00:00:00Z")
    sold = _entries(engine, {pack["id"]})
    assert list(sold) == [f"credits:sold:{pack_invoice['id']}"]
    [revenue] = [k for k in balances(sold) if k.startswith("revenue:")]
    assert revenue.endswith(":one_time")
    assert balances(sold) == {revenue: D("45.00"), "deferred_revenue": D("-45.00")}
    # With the invoice's own entry, the pack is no revenue yet: receivables and tax, deferred 45.00.
    assert balances({**sold, **_entries(engine, {pack_invoice["id"]})}) == {
        "cash:sandbox": D("53.55"), "tax_payable:DE": D("-8.55"), "deferred_revenue": D("-45.00")}

    sold_in = engine.now()[:7]
    # The report defers the pack too: billed 45.00 on "credits", nothing earned yet.
    assert _credits_report(engine, cid, sold_in) == [(sold_in, D("45.00"), D("0.00"), D("45.00"))]
    engine.advance("31d")  # the renewal: 82.11 (70.45 under the launch promotion), 60.00 by credit
    renewal = next(i for i in engine.invoices(cid) if i["reason"] == "cycle")
    assert money(renewal["total"]) == pro_base(renewal) + D("23.80")  # the base fee and two seats
    assert money(renewal["credit_applied"]) == D("60.00")
    assert wallet(engine, cid)["balances"][0]["balance"] == "0.00"
    used = {k: v for k, v in _entries(engine, {pack["id"], promo["id"]}).items() if k.startswith("credits:used:")}
    assert {k: balances({k: v}) for k, v in used.items()} == {
        f"credits:used:{renewal['id']}:{promo['id']}": {"customer_credit": D("-10.00"), "discounts": D("10.00")},
        f"credits:used:{renewal['id']}:{pack['id']}": {"customer_credit": D("-50.00"), "deferred_revenue": D("45.00"),
                                                      "discounts": D("5.00")}}
    everything = _entries(engine, {pack["id"], promo["id"], renewal["id"]})
    left = balances(everything)
    assert "deferred_revenue" not in left and "customer_credit" not in left  # used up: nothing owed
    # The report as the journal: the pack's 45.00 moved onto the renewal it paid (billed and
    # earned on the renewal's own schedule), so "credits" is billed 45.00 less and defers nothing.
    report = _credits_report(engine, cid, sold_in)
    assert [(b, r, d) for _, b, r, d in report] == [(D("45.00"), D("0.00"), D("45.00")), (D("-45.00"), 0, 0)]
    assert (report[0][0], report[1][0]) == (sold_in, renewal["period"]["start"][:7])


CATALOG = """\
catalog: credits-books-{tag}
currency: USD
taxes: {{DE: 19}}
metrics: {{}}
plans:
  basic-{tag}:
    name: Basic
    interval: month
    prices:
      - {{id: base, name: Platform, model: flat, amount: "5.00"}}
credits:
  packs:
    mini: {{name: Mini credits, price: "9.00", credit: "10.00", expires_after: 10d, rollover: all}}
    lasting: {{name: Lasting credits, price: "9.00", credit: "10.00", rollover: all}}
"""


def _publish(engine: Engine, tmp_path: Path) -> str:
    tag = secrets.token_hex(3)
    path = tmp_path / "credits-books.yaml"
    path.write_text(CATALOG.format(tag=tag))
    engine.publish(path)
    return tag


def test_a_pack_expiring_unused_is_breakage_revenue(engine: Engine, tmp_path: Path) -> None:
    """A 10.00 pack for 9.00 (+ 1.71 tax) that expires after 10 days unused: the 9.00 deferred
    is earned as one-time revenue (breakage) when it expires, and the liability is gone."""
    tag = _publish(engine, tmp_path)
    cid = engine.customer("credits_breakage")
    engine.subscribe(cid, f"basic-{tag}", payment_method=card(CARD_OK))
    engine.advance("1h")
    bought = _buy(engine, cid, "mini")
    pack, pack_invoice = bought["grant"], bought["invoice"]
    assert money(pack_invoice["total"]) == D("10.71")
    engine.advance("1h")
    sold = balances(_entries(engine, {pack["id"]}))
    [revenue] = [k for k in sold if k.startswith("revenue:")]
    assert sold == {revenue: D("9.00"), "deferred_revenue": D("-9.00")}
    sold_in = engine.now()[:7]
    engine.advance("11d")  # past its expiry: the billing job expires it
    [g] = [x for x in wallet(engine, cid)["grants"] if x["id"] == pack["id"]]
    assert (g["status"], g["remaining"]) == ("expired", "0.00")
    entries = _entries(engine, {pack["id"]})
    assert balances({f"credits:expired:{pack['id']}": entries[f"credits:expired:{pack['id']}"]}) == {
        "deferred_revenue": D("9.00"), "revenue:credits:one_time": D("-9.00")}
    assert "deferred_revenue" not in balances(entries)
    # The report: billed 9.00 when sold, the 9.00 earned (breakage) the month it expired.
    report = _credits_report(engine, cid, sold_in)
    expired_in = engine.now()[:7]
    assert [(m, r) for m, _, r, _ in report if r] == [(expired_in, D("9.00"))]
    assert sum(b for _, b, _, _ in report) == D("9.00") and report[-1][3] == 0


def test_a_voided_invoice_gives_the_credit_back_in_the_journal(engine: Engine) -> None:
    """A 10.00 operator grant pays the first 10.00 of a Pro invoice (no card: the rest stays
    open); the invoice is voided. Sales gives the 10.00 back to the grant; the journal reverses
    the whole invoice: the void entry what was receivable, `credits:returned` the credit's part
    (net and tax in the invoice's proportion) and its discount. Nothing is left on receivables,
    customer credit, tax or discounts, and the revenue is offset by credit notes."""
    cid = engine.customer("credits_void")
    promo = grant(engine, cid, amount="10.00", reason="goodwill")
    engine.subscribe(cid, "pro", quantity=1)
    engine.advance("1h")
    [first] = engine.invoices(cid)
    total = pro_total(first)
    assert money(first["credit_applied"]) == D("10.00") and money(first["amount_due"]) == total - D("10.00")
    engine.post(f"/v1/invoices/{first['id']}/void")
    engine.settle()
    assert wallet(engine, cid)["balances"][0]["available"] == "10.00"
    entries = _entries(engine, {first["id"], promo["id"]})
    returned = entries[f"credits:returned:{first['id']}:{promo['id']}"]
    assert sum(money(r["debit"]) for r in returned) == D("10.00")
    left = balances(entries)
    assert not [k for k in left if k in ("receivables", "customer_credit", "deferred_revenue")
                or k.startswith("tax_payable")], left
    # The income accounts together hold nothing: the revenue (gross, less the invoice's own
    # discount: the launch promotion) offset by credit notes for the invoice's whole net.
    assert sum(v for k, v in left.items() if k.startswith("revenue:") or k in ("discounts", "credit_notes")) == 0
    assert left["credit_notes"] == total - money(first["tax"])


def test_a_pack_refunded_in_part_gives_back_its_share_then_in_full_all_it_still_deferred(engine: Engine,
                                                                                         tmp_path: Path) -> None:
    """A 10.00 pack for 9.00 (+ 1.71 tax, 10.71) pays the 5.95 renewal (Basic 5.00 + 0.95 tax):
    its share of that use is 5.95 x 9.00 / 10.00 = 5.355, 5.36 half-even, so 5.36 is earned and
    3.64 still deferred for the 4.05 of credit left. Then 2.38 of the pack's invoice is refunded:
    its tax 1.71 x 2.38 / 10.71 = 0.38, its net 2.00. The refund takes back only its share of
    the credit, 2.00 x 10.00 / 9.00 = 2.222, 2.22 half-even (a `reduced` wallet entry; 1.83
    left, the grant still active), and `credits:reduced` moves that share's deferral,
    earned(5.95 + 2.22) - earned(5.95) = round(7.353) - 5.36 = 1.99, against the refund: 1.65
    stays deferred. The rest of the invoice refunded (8.33: tax 1.71 - 0.38 = 1.33, net 7.00)
    asks 7.78 of credit, more than is left: the 1.83 is voided and `credits:refunded` reverses
    the 1.65 against it. What the uses earned stays earned; nothing is left deferred."""
    tag = _publish(engine, tmp_path)
    cid = engine.customer("credits_refund")
    engine.subscribe(cid, f"basic-{tag}", payment_method=card(CARD_OK))
    engine.advance("1h")
    bought = _buy(engine, cid, "lasting")
    pack, pack_invoice = bought["grant"], bought["invoice"]
    assert money(pack_invoice["total"]) == D("10.71")
    engine.advance("1h")
    sold_in = engine.now()[:7]
    engine.advance("31d")  # the renewal, 5.95, paid by the pack
    renewal = next(i for i in engine.invoices(cid) if i["reason"] == "cycle")
    assert (money(renewal["total"]), money(renewal["credit_applied"])) == (D("5.95"), D("5.95"))
    used = _entries(engine, {pack["id"]})[f"credits:used:{renewal['id']}:{pack['id']}"]
    assert balances({"used": used}) == {"customer_credit": D("-5.95"), "deferred_revenue": D("5.36"),
                                        "discounts": D("0.59")}

    refund = engine.post(f"/v1/invoices/{pack_invoice['id']}/refunds", {"amount": "2.38"}, status=201)
    note = refund["credit_note"]
    assert (money(note["subtotal"]), money(note["tax"])) == (D("2.00"), D("0.38"))
    engine.settle()
    [g] = [x for x in wallet(engine, cid)["grants"] if x["id"] == pack["id"]]
    assert (g["status"], g["remaining"]) == ("active", "1.83")
    assert kinds(engine, cid)[-1] == ("reduced", "-2.22")
    entries = _entries(engine, {pack["id"]})
    assert balances({"r": entries[f"credits:reduced:{note['id']}"]}) == {
        "deferred_revenue": D("1.99"), "refunds": D("-1.99")}
    assert f"credits:refunded:{pack['id']}" not in entries
    assert balances(entries)["deferred_revenue"] == D("-1.65")  # sold 9.00 - used 5.36 - refunded 1.99
    # The report as the journal: billed 9.00, less 5.36 moved onto the renewal, less the 1.99
    # refunded; nothing earned; 1.65 deferred.
    report = _credits_report(engine, cid, sold_in)
    assert report[0] == (sold_in, D("9.00"), D("0.00"), D("9.00"))
    assert (sum(r for _, _, r, _ in report), report[-1][3]) == (D("0.00"), D("1.65"))
    # The refund's own entry: 2.38 back to the card, its 0.38 of tax off taxes payable (as its
    # credit note says), the 2.00 net on refunds, 1.99 of which the share's deferral covers.
    paid_back = balances({k: v for k, v in _entries(engine, {pack_invoice["id"]}).items() if k.startswith("refund:")})
    assert paid_back == {"refunds": D("2.00"), "tax_payable:DE": D("0.38"), "cash:sandbox": D("-2.38")}

    # The rest refunded: its share is more than is left, so all of it goes.
    rest = engine.post(f"/v1/invoices/{pack_invoice['id']}/refunds", {}, status=201)
    assert (money(rest["credit_note"]["subtotal"]), money(rest["credit_note"]["tax"])) == (D("7.00"), D("1.33"))
    engine.settle()
    [g] = [x for x in wallet(engine, cid)["grants"] if x["id"] == pack["id"]]
    assert (g["status"], g["remaining"]) == ("void", "0.00")
    entries = _entries(engine, {pack["id"]})
    assert balances({"refunded": entries[f"credits:refunded:{pack['id']}"]}) == {
        "deferred_revenue": D("1.65"), "refunds": D("-1.65")}
    assert "deferred_revenue" not in balances(entries)  # sold 9.00 = used 5.36 + refunded 1.99 + 1.65
    report = _credits_report(engine, cid, sold_in)
    assert (sum(b for _, b, _, _ in report), sum(r for _, _, r, _ in report), report[-1][3]) == (0, 0, 0)


def test_a_voided_invoice_gives_the_credit_balance_back_in_the_journal(engine: Engine) -> None:
    """Pro with two seats, one dropped an hour later: the seat's unused days are a credit note
    to the customer's balance (11.90: no whole day was used). The renewal (by bank transfer: left open) takes c off what
    is due, and is voided. Sales puts c = 11.90 back on the balance; the void entry reverses what was
    receivable, and `void-balance` the balance's part: its tax c x tax / total of the renewal,
    half-even (1.90), its net the rest (10.00), against customer_credit. Nothing is left on receivables,
    customer credit or tax, and the income accounts hold nothing."""
    cid = engine.customer("credits_balance_void")
    if datetime.fromisoformat(engine.now()).hour >= 22:
        # The seat is dropped an hour after signing up: on the shared clock that hour must not
        # cross midnight, or a whole day counts as used (periods are in days) and the credit is 11.51.
        engine.advance(f"{24 - datetime.fromisoformat(engine.now()).hour}h")
    sub = engine.subscribe(cid, "pro", quantity=2, payment_method=card(CARD_OK))
    engine.advance("1h")
    engine.post(f"/v1/subscriptions/{sub['id']}/change", {"quantity": 1})
    engine.settle()
    balance = money(engine.get(f"/v1/customers/{cid}")["credit_balance"])
    assert balance == D("11.90")  # the seat's whole period (no whole day used): 10.00 + 1.90 tax
    engine.post(f"/v1/customers/{cid}/payment_methods", {"type": "bank_transfer", "provider": "bank",
                                                          "default": True}, status=201)
    engine.advance("31d")
    renewal = next(i for i in engine.invoices(cid) if i["reason"] == "cycle")
    total, tax = pro_total(renewal), money(renewal["tax"])
    assert (money(renewal["credit_applied"]), renewal["status"]) == (balance, "finalized")
    engine.post(f"/v1/invoices/{renewal['id']}/void")
    engine.settle()
    assert money(engine.get(f"/v1/customers/{cid}")["credit_balance"]) == balance
    entries = _entries(engine, {renewal["id"]})
    its_tax = (balance * tax / total).quantize(D("0.01"), ROUND_HALF_EVEN)
    assert its_tax == D("1.90")  # 11.90 x 11.21 / 70.21 = 1.8999; x 9.35 / 58.55 = 1.9003 (promotion)
    assert balances({"v": entries[f"void-balance:{renewal['id']}"]}) == {
        "credit_notes": balance - its_tax, "tax_payable:DE": its_tax, "customer_credit": -balance}
    left = balances(entries)
    assert not [k for k in left if k in ("receivables", "customer_credit") or k.startswith("tax_payable")], left
    assert sum(v for k, v in left.items() if k.startswith("revenue:") or k in ("discounts", "credit_notes")) == 0
    assert left["credit_notes"] == total - tax
