"""What an accountant closing the month meets after the books' first cut (issue 21, docs/books.md),
over HTTP on the shared test clock, read through `GET /v1/books/journal` (and the revenue report)
and ending with the ledger checker: a refund gives back its tax; an operator's void of a pack's
grant is breakage; a credit note on part of a pack's own invoice takes back only its share; a void of an
invoice an overpayment paid in part gives that credit back. Hand-computed for a DE customer (19 %)
on the Basic plan (5.00 + 0.95 tax = 5.95) and the "lasting" pack (10.00 of credit for 9.00 + 1.71
tax = 10.71) of test_credits_books' catalog."""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from tests.journeys.harness import ROOT, Engine, money, redeliver
from tests.journeys.test_books_journey import IBAN, balances
from tests.journeys.test_credits import grant, kinds, wallet
from tests.journeys.test_credits_books import _buy, _credits_report, _entries, _publish
from tests.journeys.test_journeys import CARD_OK, card
from tests.payments.camt import Entry, camt053

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


def test_an_operators_void_of_a_pack_is_breakage(engine: Engine, tmp_path: Path) -> None:
    """The pack pays the 5.95 renewal: its share 5.95 x 9.00 / 10.00 = 5.355, 5.36 half-even,
    earned; 3.64 still deferred for the 4.05 left. An operator voids the grant: `credits:voided`
    Dr deferred_revenue 3.64 / Cr revenue:credits:one_time 3.64 (breakage, as an expiry's);
    nothing is left deferred and the report earns the 3.64 the month it was voided. A second void
    is refused and posts nothing; a promotional grant voided posts nothing (it deferred nothing)."""
    _, cid = _basic(engine, tmp_path, "books_pack_void", payment_method=card(CARD_OK))
    bought = _buy(engine, cid, "lasting")
    pack, pack_invoice = bought["grant"], bought["invoice"]
    assert money(pack_invoice["total"]) == D("10.71")
    engine.advance("1h")
    sold_in = engine.now()[:7]
    engine.advance("31d")  # the renewal, 5.95, paid by the pack
    renewal = next(i for i in engine.invoices(cid) if i["reason"] == "cycle")
    assert money(renewal["credit_applied"]) == D("5.95")
    engine.post(f"/v1/wallet/grants/{pack['id']}/void", {"reason": "abuse"})
    engine.settle()
    entries = _entries(engine, {pack["id"]})
    assert balances({"v": entries[f"credits:voided:{pack['id']}"]}) == {
        "deferred_revenue": D("3.64"), BREAKAGE: D("-3.64")}
    assert "deferred_revenue" not in balances(entries)  # sold 9.00 = used 5.36 + voided 3.64
    report = _credits_report(engine, cid, sold_in)
    assert [(m, r) for m, _, r, _ in report if r] == [(engine.now()[:7], D("3.64"))]
    assert (sum(b for _, b, _, _ in report), report[-1][3]) == (D("3.64"), 0)  # 9.00 - 5.36 moved to the renewal
    r = engine.admin.post(f"/v1/wallet/grants/{pack['id']}/void", json={"reason": "again"})
    assert r.status_code == 409, r.text
    engine.settle()
    assert _entries(engine, {pack["id"]}) == entries
    promo = grant(engine, cid, amount="5.00", reason="goodwill")
    engine.post(f"/v1/wallet/grants/{promo['id']}/void", {"reason": "by mistake"})
    engine.settle()
    assert _entries(engine, {promo["id"]}) == {}


def test_a_credit_note_on_part_of_a_packs_invoice_takes_back_only_its_share(engine: Engine, tmp_path: Path) -> None:
    """The pack's invoice (10.00 of credit for 9.00 + 1.71 tax = 10.71, paid by card) gets a 2.38
    credit note (not a refund): tax 2.38 x 1.71 / 10.71 = 0.38, net 2.00, to the customer's
    balance. Its share of the credit, 2.00 x 10.00 / 9.00 = 2.222, 2.22 half-even, leaves the
    wallet (a `reduced` entry; 7.78 left, the grant still active) and `credits:reduced` moves that
    share's deferral, earned(2.22) = round(1.998) = 2.00, to credit_notes: 7.00 stays deferred.
    The renewal (5.95) takes the 2.38 balance first, then 3.57 of the pack: used 2.22 + 3.57 =
    5.79, round(5.211) = 5.21 earned so far, 3.21 for this use (0.36 discount), 3.79 deferred for
    the 4.21 left. A second note of 5.95 (net 5.00, tax 0.95) asks 5.56 of credit, more than is
    left: as a refund of it, the 4.21 is voided and `credits:credited` reverses the 3.79 against
    credit_notes; the 1.21 it credits beyond (credit already used) stays on credit_notes and the
    report bills it back that month. The report's deferred and the journal's deferred_revenue
    agree at each step; the note's events delivered again change nothing."""
    _, cid = _basic(engine, tmp_path, "books_pack_note", payment_method=card(CARD_OK))
    bought = _buy(engine, cid, "lasting")
    pack, pack_invoice = bought["grant"], bought["invoice"]
    engine.advance("1h")
    sold_in = engine.now()[:7]
    note = engine.post(f"/v1/invoices/{pack_invoice['id']}/credit_notes", {"amount": "2.38", "reason": "goodwill"},
                       status=201)
    assert (money(note["subtotal"]), money(note["tax"]), money(note["credited_to_balance"])) == (
        D("2.00"), D("0.38"), D("2.38"))
    engine.settle()
    assert _pack(engine, cid, pack["id"]) == ("active", "7.78")
    assert kinds(engine, cid)[-1] == ("reduced", "-2.22")
    entries = _entries(engine, {pack["id"], pack_invoice["id"]})
    [cn] = [k for k in entries if k.startswith("cn:")]
    assert balances({cn: entries[cn]}) == {"credit_notes": D("2.00"), "tax_payable:DE": D("0.38"),
                                           "customer_credit": D("-2.38")}
    assert balances({"r": entries[f"credits:reduced:{note['id']}"]}) == {
        "deferred_revenue": D("2.00"), "credit_notes": D("-2.00")}
    _agree(engine, cid, sold_in, {pack["id"]}, D("7.00"))
    redeliver(engine, cid, ("credit_note.issued", "credits.reduced"))
    assert _pack(engine, cid, pack["id"]) == ("active", "7.78")
    assert _entries(engine, {pack["id"], pack_invoice["id"]}) == entries

    engine.advance("31d")  # the renewal: 2.38 from the balance, 3.57 from the pack
    renewal = next(i for i in engine.invoices(cid) if i["reason"] == "cycle")
    assert money(renewal["credit_applied"]) == D("5.95")
    assert _pack(engine, cid, pack["id"]) == ("active", "4.21")
    used = _entries(engine, {pack["id"]})[f"credits:used:{renewal['id']}:{pack['id']}"]
    assert balances({"u": used}) == {"customer_credit": D("-3.57"), "deferred_revenue": D("3.21"),
                                     "discounts": D("0.36")}
    _agree(engine, cid, sold_in, {pack["id"]}, D("3.79"))

    second = engine.post(f"/v1/invoices/{pack_invoice['id']}/credit_notes", {"amount": "5.95", "reason": "goodwill"},
                         status=201)
    assert (money(second["subtotal"]), money(second["tax"])) == (D("5.00"), D("0.95"))
    engine.settle()
    assert _pack(engine, cid, pack["id"]) == ("void", "0.00")
    assert kinds(engine, cid)[-1] == ("void", "-4.21")
    entries = _entries(engine, {pack["id"], pack_invoice["id"]})
    assert balances({"c": entries[f"credits:credited:{pack['id']}"]}) == {
        "deferred_revenue": D("3.79"), "credit_notes": D("-3.79")}
    left = balances(entries)
    assert "deferred_revenue" not in left and left["credit_notes"] == D("1.21"), left  # 7.00 - 2.00 - 3.79
    report = _agree(engine, cid, sold_in, {pack["id"]}, D("0.00"))
    # billed 9.00 - 2.00 - 3.21 - 3.79 - 1.21; only the 1.21 beyond the deferral is recognised (back)
    assert (sum(b for _, b, _, _ in report), sum(r for _, _, r, _ in report)) == (D("-1.21"), D("-1.21"))


def _pack(engine: Engine, cid: str, grant_id: str) -> tuple[str, str]:
    [g] = [x for x in wallet(engine, cid)["grants"] if x["id"] == grant_id]
    return g["status"], g["remaining"]


def _agree(engine: Engine, cid: str, first: str, grants: set[str],
           deferred: Decimal) -> list[tuple[str, Decimal, Decimal, Decimal]]:
    """The revenue report's deferred on "credits" at the clock's month end is `deferred`, and so is
    what the journal's deferred_revenue holds for the pack's grants (`GET /v1/books/journal`)."""
    report = _credits_report(engine, cid, first)
    assert report[-1][3] == deferred, report
    assert -balances(_entries(engine, grants)).get("deferred_revenue", D(0)) == deferred
    return report


def _overpaid(engine: Engine, tmp_path: Path, name: str) -> tuple[str, dict[str, Any]]:
    """Basic by bank transfer, its 5.95 signup paid 8.00 by a camt.053 (`billing reconcile`): 2.05
    to the customer's credit. The customer and the signup invoice."""
    tag = _publish(engine, tmp_path)
    cid = engine.customer(name)
    engine.post(f"/v1/customers/{cid}/payment_methods", {"type": "bank_transfer", "provider": "bank",
                                                          "default": True}, status=201)
    engine.subscribe(cid, f"basic-{tag}")
    engine.advance("1h")
    [first] = engine.invoices(cid)
    assert (money(first["total"]), first["collection"]["remaining"]) == (D("5.95"), "5.95"), first["collection"]
    booked = date.fromisoformat(engine.now()[:10])
    statement = tmp_path / "overpaid.xml"
    statement.write_bytes(camt053([Entry("8.00", currency="USD", reference=first["collection"]["payment_reference"],
                                         booked=booked.isoformat())], stmt_id=f"{cid}-1", iban=IBAN,
                                  start=f"{booked}T00:00:00Z", end=f"{booked + timedelta(days=1)}T00:00:00Z"))
    done = engine.billing("reconcile", str(statement), "--provider", "bank")
    assert done.returncode == 0, done.stderr
    engine.settle()  # sales marks the invoice paid from the payment's event (another process)
    return cid, first


def test_a_void_gives_back_the_overpayment_credit_that_paid_part_of_it(engine: Engine, tmp_path: Path) -> None:
    """Basic by bank transfer: the 5.95 signup is paid 8.00 by a camt.053 (`billing reconcile`),
    2.05 to the customer's credit. The renewal (5.95) takes the 2.05 (Dr customer_credit / Cr
    receivables), 3.90 left to transfer, and is voided: the void entry reverses the whole invoice,
    Dr credit_notes 5.00, Dr tax_payable 0.95 / Cr receivables 3.90, Cr customer_credit 2.05, and
    payments gives the 2.05 back: the next renewal takes it again."""
    cid, first = _overpaid(engine, tmp_path, "books_overpaid")
    engine.advance("31d")
    renewal = next(i for i in engine.invoices(cid) if i["reason"] == "cycle")
    assert (renewal["collection"]["credit_applied"], renewal["collection"]["remaining"]) == ("2.05", "3.90")
    engine.post(f"/v1/invoices/{renewal['id']}/void")
    engine.settle()
    entries = _entries(engine, {first["id"], renewal["id"]})
    assert balances({"v": entries[f"void:{renewal['id']}"]}) == {
        "credit_notes": D("5.00"), "tax_payable:DE": D("0.95"), "receivables": D("-3.90"), "customer_credit": D("-2.05")}
    left = balances(entries)
    assert (left["customer_credit"], left["tax_payable:DE"], left["credit_notes"]) == (D("-2.05"), D("-0.95"), D("5.00"))
    assert "receivables" not in left, left
    engine.advance("31d")  # the credit given back pays the next renewal again
    [*_, after] = [i for i in engine.invoices(cid) if i["reason"] == "cycle"]
    assert after["id"] != renewal["id"] and after["collection"]["credit_applied"] == "2.05", after["collection"]


def test_a_refund_beyond_the_invoice_pays_back_the_overpayment_credit(engine: Engine, tmp_path: Path) -> None:
    """The 5.95 signup paid 8.00 by transfer (2.05 to the customer's credit) is refunded in full
    over HTTP (no amount: all that was paid, the credit the customer holds included): 8.00 back
    through the bank, a credit note for the invoice's 5.95 only (net 5.00, tax 0.95) and 2.05 of
    credit repaid. The refund entry: Dr refunds 5.00, Dr tax_payable:DE 0.95, Dr customer_credit
    2.05 / Cr the statement's account 8.00 (the transfer came in there). Nothing is left on
    customer_credit nor in cash, and the renewal finds no credit to apply: 5.95 to transfer."""
    cid, first = _overpaid(engine, tmp_path, "books_refund_over")
    done = engine.post(f"/v1/invoices/{first['id']}/refunds", {"reason": "closing the account"}, status=201)
    assert (done["amount"], done["credit_repaid"]) == ("8.00", "2.05"), done
    note = done["credit_note"]
    assert (money(note["total"]), money(note["subtotal"]), money(note["tax"])) == (D("5.95"), D("5.00"), D("0.95"))
    engine.settle()
    entries = _entries(engine, {first["id"]})
    [refund] = [k for k in entries if k.startswith("refund:")]
    bank = f"cash:bank:{IBAN}"
    assert balances({refund: entries[refund]}) == {"refunds": D("5.00"), "tax_payable:DE": D("0.95"),
                                                   "customer_credit": D("2.05"), bank: D("-8.00")}
    left = balances(entries)
    assert "customer_credit" not in left and bank not in left and "tax_payable:DE" not in left, left
    engine.advance("31d")
    renewal = next(i for i in engine.invoices(cid) if i["reason"] == "cycle")
    assert (renewal["collection"]["credit_applied"], renewal["collection"]["remaining"]) == ("0.00", "5.95")


def test_a_refund_beyond_the_invoice_without_the_credit_is_refused(engine: Engine, tmp_path: Path) -> None:
    """The 2.05 the 8.00 transfer left on credit pays part of the renewal; the customer holds no
    credit any more, so a refund of the signup's 8.00 (5.95 of the invoice, 2.05 beyond it) is
    refused, 422 on `amount`, nothing written; the invoice's own 5.95 is still refunded."""
    cid, first = _overpaid(engine, tmp_path, "books_refund_over_used")
    engine.advance("31d")
    renewal = next(i for i in engine.invoices(cid) if i["reason"] == "cycle")
    assert renewal["collection"]["credit_applied"] == "2.05"
    engine.settle()
    before = _entries(engine, {first["id"]})
    r = engine.admin.post(f"/v1/invoices/{first['id']}/refunds", json={"amount": "8.00"})
    assert r.status_code == 422, r.text
    problem = r.json()
    assert "amount" in str(problem.get("field", problem)) and "holds 0.00 USD" in r.text, r.text
    engine.settle()
    assert _entries(engine, {first["id"]}) == before
    assert engine.get(f"/v1/invoices/{first['id']}")["credit_notes"] == []
    done = engine.post(f"/v1/invoices/{first['id']}/refunds", {}, status=201)
    assert (done["amount"], done["credit_repaid"], done["credit_note"]["total"]) == ("5.95", "0.00", "5.95")


PAYOUT_IBAN = "DE89370400440532013000"  # where the deployment's chart says the sandbox pays out


def _payout_chart(tmp_path: Path, account: str) -> Path:
    """The shipped chart with the payout account kept (`cash.bank_accounts`) and the sandbox's
    payouts declared to land on `account` (`cash.payouts`)."""
    chart = (ROOT / "engine/payments/books/chart.yaml").read_text().replace(
        "    credit: Liabilities:CustomerCredit\n",
        f"    credit: Liabilities:CustomerCredit\n  bank_accounts: {{{PAYOUT_IBAN}: Assets:Bank:Payouts}}\n"
        f"  payouts: {{sandbox: {account}}}\n")
    path = tmp_path / "payout-chart.yaml"
    path.write_text(chart)
    return path


def test_a_payout_lands_on_the_bank_account_the_chart_names_and_its_bank_line_clears_it(
        engine: Engine, tmp_path: Path) -> None:
    """The 5.95 signup paid by card; the provider's settlement file for the day (written here as
    the sandbox writes it: one line, fee 2.9 % + 0.30 = 0.47255, 0.47 half-up, net 5.48) pays it
    out as payout po_<customer>. The deployment's chart says the sandbox pays out to
    DE89...3000, so `billing reconcile` posts Dr cash:bank:DE89...3000 5.48, Dr provider_fees
    0.47 / Cr cash:sandbox 5.95. That account's camt.053 shows the 5.48 arriving with the payout
    id in its text: matched to the payout, nothing posted, no line left open; the card's cash is
    cleared and the bank account holds the 5.48. A chart declaring payouts to an account it does
    not keep: exit 1 naming the file, line and field, nothing imported."""
    _, cid = _basic(engine, tmp_path, "books_payout", payment_method=card(CARD_OK))
    [invoice] = engine.invoices(cid)
    [charge] = engine.charges(cid)
    day = engine.now()[:10]
    payout = f"po_{cid}"
    settlement = tmp_path / "settlement.csv"
    settlement.write_text(
        "settlement_date,payout_id,type,provider_reference,payment_reference,currency,gross,fee,net,created_at\n"
        f"{day},{payout},charge,{charge['id']},{charge.get('reference') or ''},USD,5.95,0.47,5.48,{day}T01:00:00+00:00\n")
    bad = engine.billing("reconcile", str(settlement), "--provider", "sandbox",
                         env={"BILLING_CHART_OF_ACCOUNTS": str(_payout_chart(tmp_path, "CH9300762011623852957"))})
    assert bad.returncode == 1 and "payout-chart.yaml:" in bad.stderr and "cash.payouts.sandbox" in bad.stderr, bad.stderr
    assert "not in cash.bank_accounts" in bad.stderr, bad.stderr
    assert not [k for k in _entries(engine, {payout}) if k.startswith("payout:")]
    chart = {"BILLING_CHART_OF_ACCOUNTS": str(_payout_chart(tmp_path, PAYOUT_IBAN))}
    done = engine.billing("reconcile", str(settlement), "--provider", "sandbox", env=chart)
    assert done.returncode == 0, done.stderr
    engine.settle()
    bank = f"cash:bank:{PAYOUT_IBAN}"
    paid_out = _entries(engine, {payout})
    assert [balances({k: v}) for k, v in paid_out.items()] == [
        {"provider_fees": D("0.47"), bank: D("5.48"), "cash:sandbox": D("-5.95")}]
    booked = date.fromisoformat(day) + timedelta(days=1)
    statement = tmp_path / "payout.xml"
    statement.write_bytes(camt053([Entry("5.48", currency="USD", unstructured=f"SANDBOX PAYOUT {payout}",
                                         booked=booked.isoformat())], stmt_id=f"{cid}-payout", iban=PAYOUT_IBAN,
                                  start=f"{booked}T00:00:00Z", end=f"{booked + timedelta(days=1)}T00:00:00Z"))
    done = engine.billing("reconcile", str(statement), "--provider", "bank", env=chart)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["counts"] == {"matched": 1} and not report["mismatches"], report
    engine.settle()
    assert _entries(engine, {payout}) == paid_out  # the bank line posts nothing more
    left = balances({**_entries(engine, {invoice["id"]}), **paid_out})
    assert (left[bank], left["provider_fees"], "cash:sandbox" in left) == (D("5.48"), D("0.47"), False), left


def test_a_credit_note_on_a_pack_not_paid_yet_takes_its_share_before_the_credit_counts(
        engine: Engine, tmp_path: Path) -> None:
    """A customer paying by bank transfer buys the "lasting" pack (10.71, open: the grant waits,
    10.00 pending). A 2.38 note on it (net 2.00) is applied to what is due (8.33 left) and takes
    its share back at once: 2.22, so 7.78 pending, and `credits:reduced` moves 2.00 of the 9.00
    deferred to credit_notes. The 8.33 transfer (a camt.053 through `billing reconcile`) pays the
    invoice: 7.78 of credit counts, not 10.00, and 7.00 is still deferred for it."""
    tag = _publish(engine, tmp_path)
    cid = engine.customer("books_pack_note_open")
    engine.post(f"/v1/customers/{cid}/payment_methods", {"type": "bank_transfer", "provider": "bank",
                                                          "default": True}, status=201)
    engine.subscribe(cid, f"basic-{tag}")
    engine.advance("1h")
    bought = _buy(engine, cid, "lasting")
    pack, pack_invoice = bought["grant"], bought["invoice"]
    engine.settle()
    sold_in = engine.now()[:7]
    assert _pack(engine, cid, pack["id"]) == ("pending", "0.00")
    note = engine.post(f"/v1/invoices/{pack_invoice['id']}/credit_notes", {"amount": "2.38", "reason": "goodwill"},
                       status=201)
    assert (money(note["subtotal"]), money(note["applied_to_invoice"])) == (D("2.00"), D("2.38"))
    engine.settle()
    [usd] = wallet(engine, cid)["balances"]
    assert (usd["balance"], usd["pending"]) == ("0.00", "7.78")
    assert kinds(engine, cid) == [("reduced", "-2.22")]
    entries = _entries(engine, {pack["id"]})
    assert balances({"r": entries[f"credits:reduced:{note['id']}"]}) == {
        "deferred_revenue": D("2.00"), "credit_notes": D("-2.00")}
    _agree(engine, cid, sold_in, {pack["id"]}, D("7.00"))

    invoice = engine.get(f"/v1/invoices/{pack_invoice['id']}")
    assert invoice["collection"]["remaining"] == "8.33", invoice["collection"]
    booked = date.fromisoformat(engine.now()[:10])
    statement = tmp_path / "pack.xml"
    statement.write_bytes(camt053([Entry("8.33", currency="USD", reference=invoice["collection"]["payment_reference"],
                                         booked=booked.isoformat())], stmt_id=f"{cid}-pack", iban=IBAN,
                                  start=f"{booked}T00:00:00Z", end=f"{booked + timedelta(days=1)}T00:00:00Z"))
    done = engine.billing("reconcile", str(statement), "--provider", "bank")
    assert done.returncode == 0, done.stderr
    engine.settle()
    assert engine.get(f"/v1/invoices/{pack_invoice['id']}")["status"] == "paid"
    assert _pack(engine, cid, pack["id"]) == ("active", "7.78")
    assert kinds(engine, cid) == [("reduced", "-2.22"), ("grant", "10.00")]
    _agree(engine, cid, sold_in, {pack["id"]}, D("7.00"))
