"""Prepaid credit in the journal (docs/books.md, *Prepaid credit*): a pack bought is deferred
revenue, a liability, until its credit is used or expires; promotional credit (an operator's
grant, a promotion) is a discount, never revenue.

- A pack's invoice (a grant names it): its revenue moves to `deferred_revenue`, entry
  `credits:sold:<invoice>` (reference: the grant): Dr `revenue:...` (gross) / Cr `discounts`,
  Cr `deferred_revenue` (net of discount, before tax: what the customer paid for the credit).
- An invoice paid from the wallet: the invoice's own entry debits `customer_credit` with all of
  its `credit_applied`; for each grant that paid, entry `credits:used:<invoice>:<grant>` moves
  that debit: Cr `customer_credit` / Dr `deferred_revenue` (the pack's share: used x price /
  credit, half-even to the cent on the cumulative use, so a pack used up has earned exactly
  what it deferred) and Dr `discounts` (the rest: promotional credit, and a pack's bonus).
- A voided invoice that credit paid: `credits:returned:<invoice>:<grant>` reverses each use
  with its share of the invoice's revenue and tax (post_returns); what it gave back to a grant
  no longer active (expired, voided) the wallet takes again at once, and entry
  `credits:lapsed:<invoice>:<grant>` earns the pack's share of it: Dr `deferred_revenue` /
  Cr `revenue:credits:one_time` (breakage, as an expiry's).
- A pack's credit that expires: entry `credits:expired:<grant>`: Dr `deferred_revenue` (what is
  left of it) / Cr `revenue:credits:one_time` (breakage: paid for, never used).
- A pack's invoice refunded in part: the refund's share of the credit is taken back (a
  `reduced` wallet entry) and entry `credits:reduced:<refund's note>` reverses that share's
  deferral: Dr `deferred_revenue` / Cr `refunds`; the rest stays deferred. A refund whose
  share is all the unused credit or more (a full refund) takes all that is left, and entry
  `credits:refunded:<grant>` reverses what is still deferred for it against the refund: Dr
  `deferred_revenue` / Cr `refunds` (up to the refund's net) and Cr `revenue:credits:one_time`
  (the unused credit the refund did not pay back: breakage). What was already earned stays.
- A credit note on part of a pack's invoice: the note's share of the credit is taken back (a
  `reduced` wallet entry), and entry `credits:reduced:<note>` reverses that share's deferral:
  Dr `deferred_revenue` / Cr `credit_notes`; the rest stays deferred. A note for all the
  unused credit or more is treated as a refund of it (`credits:credited:<grant>`).

Each entry is posted by the payments consumer in the transaction that marks its event handled,
so a redelivery posts nothing twice."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import credits
from engine.credits.terms import earned
from engine.payments import journal
from engine.payments.books.revrec import month_of
from engine.payments.books.schedules import schedule_credit, split_credit, write_rows
from engine.payments.journal import Posting
from engine.payments.models import JournalLine, RevenueScheduleRow
from engine.payments.service import CollectableInvoice, PaymentService
from engine.store import mark_processed

ZERO = Decimal(0)
DEFERRED = "deferred_revenue"
DISCOUNTS = "discounts"
BREAKAGE = "revenue:credits:one_time"
CREDIT_NOTES = "credit_notes"
# The revenue report's side (docs/books.md, *Prepaid credit*): a pack's schedule rows are on
# plan "credits" (the journal's breakage account, revenue:credits:one_time), and what is still
# deferred of it waits in a month no report reaches: earned when it is spent, expires or goes.
CREDITS_PLAN = "credits"
UNEARNED = date(9999, 12, 1)


def write_report(session: Session, source: str, customer_id: str, invoice_id: str | None, currency: str,
            rows: list[tuple[date, date, Decimal]]) -> None:
    """Schedule rows `source` of a pack's life (billed_on, month, amount) on plan "credits",
    under the pack's invoice (so a credit note or void of an invoice it paid leaves them be).
    The month close skips `credits:` rows: the journal's credits entries post them already."""
    if invoice_id is None:
        return
    write_rows(session, [{"source_id": source, "invoice_id": invoice_id, "line_no": no, "customer_id": customer_id,
                          "plan": CREDITS_PLAN, "price_type": "one_time", "currency": currency, "billed_on": billed,
                          "month": month, "amount": amount}
                         for no, (billed, month, amount) in enumerate(rows, start=1) if amount])


def earned_rows(day: date, amount: Decimal) -> list[tuple[date, date, Decimal]]:
    """What was deferred, earned on `day` (billed nothing more): out of UNEARNED, into its month."""
    return [(day, UNEARNED, -amount), (day, month_of(day), amount)]


def booked(session: Session, invoice_id: str | None) -> Decimal:
    """What a pack's sale deferred (its `credits:sold` entry; an indexed read by entry id)."""
    if invoice_id is None:
        return ZERO
    rows = session.scalars(select(JournalLine.credit).where(
        JournalLine.entry_id == f"credits:sold:{invoice_id}", JournalLine.account == DEFERRED))
    return sum(rows, ZERO)


def wallet_entries(session: Session, invoice: CollectableInvoice, revenue: Mapping[str, Decimal],
                   discounts: Decimal, now: datetime) -> None:
    """After the invoice's own entry: its sale of credit deferred, or its use of credit moved."""
    if not post_sale(session, invoice, revenue, discounts, now):
        post_usage(session, invoice.invoice_id, invoice.currency, now)


def post_sale(session: Session, invoice: CollectableInvoice, revenue: Mapping[str, Decimal],
              discounts: Decimal, now: datetime) -> bool:
    """A pack's invoice: its revenue deferred. False when the invoice sells no credit."""
    invoice_id, currency = invoice.invoice_id, invoice.currency
    grant = credits.grant_sold_by(session, invoice.customer_id, invoice_id)
    if grant is None:
        return False
    net = sum(revenue.values(), ZERO) - discounts
    postings = [Posting(journal.revenue_account(key), debit=v) for key, v in revenue.items() if v > 0]
    postings += [Posting(DISCOUNTS, credit=discounts), Posting(DEFERRED, credit=net)]
    journal.post_entry(session, f"credits:sold:{invoice_id}", now, currency, postings,
                       f"credit pack sold: revenue deferred until the credit is used ({invoice_id})", grant.id)
    _defer_schedule(session, invoice_id)
    return True


def _defer_schedule(session: Session, invoice_id: str) -> None:
    """The report's side of a pack sold: each of its invoice's schedule rows (one-time, earned
    the day it was issued) is taken back, and the same net waits on "credits" until spent."""
    source = f"credits:sold:{invoice_id}"
    own = session.scalars(select(RevenueScheduleRow).where(RevenueScheduleRow.source_id == f"inv:{invoice_id}")).all()
    out = []
    for r in own:
        out += [{"source_id": source, "invoice_id": invoice_id, "line_no": r.line_no, "customer_id": r.customer_id,
                 "plan": r.plan, "price_type": r.price_type, "currency": r.currency, "billed_on": r.billed_on,
                 "month": r.month, "amount": -r.amount},
                {"source_id": source, "invoice_id": invoice_id, "line_no": r.line_no, "customer_id": r.customer_id,
                 "plan": CREDITS_PLAN, "price_type": "one_time", "currency": r.currency, "billed_on": r.billed_on,
                 "month": UNEARNED, "amount": r.amount}]
    write_rows(session, out)


def post_usage(session: Session, invoice_id: str, currency: str, now: datetime) -> int:
    """The wallet's share of an invoice's `credit_applied`, per grant; the entries posted."""
    used: dict[str, Decimal] = defaultdict(Decimal)
    for draw in credits.paid_by_credits(session, [invoice_id])[invoice_id]:
        used[str(draw["grant_id"])] += Decimal(draw["amount"])
    posted = 0
    for grant_id, amount in sorted(used.items()):
        if amount <= ZERO:
            continue
        deferred = _deferred_share(session, grant_id, amount, currency)
        entry_id = f"credits:used:{invoice_id}:{grant_id}"
        journal.post_entry(session, entry_id, now, currency, [
            Posting(journal.CUSTOMER_CREDIT, credit=amount), Posting(DEFERRED, debit=deferred),
            Posting(DISCOUNTS, debit=amount - deferred)], f"wallet credit paid {invoice_id}", grant_id)
        # The report: the pack's deferral moves onto the invoice it pays (billed and earned on
        # its own schedule): billed less on "credits", so nothing is counted twice.
        grant = credits.get_grant(session, grant_id)
        write_report(session, entry_id, grant.customer_id, grant.invoice_id, currency, [(now.date(), UNEARNED, -deferred)])
        posted += 1
    return posted


def _deferred_share(session: Session, grant_id: str, used: Decimal, currency: str) -> Decimal:
    """The pack's share of `used`: what its cumulative use earned now less before this use."""
    grant = credits.get_grant(session, grant_id)
    if grant.source not in credits.PREPAID:
        return ZERO  # promotional: a discount, nothing was deferred for it
    total = booked(session, grant.invoice_id)
    so_far = grant.amount - credits.remaining(session, [grant_id])[grant_id]  # this use included
    return earned(total, grant.amount, so_far, currency) - earned(total, grant.amount, so_far - used, currency)


def post_expiry(session: Session, grant_id: str, expired: Decimal, currency: str, now: datetime, *,
                kind: str = "expired") -> bool:
    """A prepaid grant expired (or voided by an operator: `kind` "voided") with `expired` of its
    credit unused: what is still deferred of it is earned (breakage). False for promotional
    credit (nothing deferred), or when nothing is left deferred."""
    grant = credits.get_grant(session, grant_id)
    if grant.source not in credits.PREPAID:
        return False
    total = booked(session, grant.invoice_id)
    left = total - earned(total, grant.amount, grant.amount - expired, currency)
    if left <= ZERO:
        return False
    why = "expired unused" if kind == "expired" else "voided by an operator"
    journal.post_entry(session, f"credits:{kind}:{grant_id}", now, currency, [
        Posting(DEFERRED, debit=left), Posting(BREAKAGE, credit=left)],
        f"credit pack {why}: {grant_id}", grant_id)
    write_report(session, f"credits:{kind}:{grant_id}", grant.customer_id, grant.invoice_id, currency, earned_rows(now.date(), left))
    return True


def post_refund(session: Session, customer_id: str, invoice_id: str, note_id: str, refunded_net: Decimal,
                currency: str, now: datetime) -> bool:
    """A pack's invoice refunded (`refunded_net`: the refund's net of tax, as its credit note
    `note_id` has it): the refund's share of the pack's credit leaves the wallet and what it
    deferred is reversed against `refunds`, as a credit note's share is (_credit_back); a refund
    whose share is all the unused credit or more (a full refund) takes all of it, the part the
    refund does not cover earned as breakage. False when the invoice sold no credit, or its
    credit is already gone (expired, voided, refunded in full): nothing is left deferred.

    The refund's own entry (Dr `refunds` net, Dr `tax_payable` / Cr `cash:<provider>`, when the
    provider confirms it) is the one every refund gets (docs/books.md)."""
    grant = credits.grant_sold_by(session, customer_id, invoice_id)
    if grant is None or grant.status != "active":
        return False
    return _credit_back(session, grant, invoice_id, note_id, refunded_net, currency, now, kind="refunded")[0] > ZERO


def _unused(session: Session, grant: credits.Grant) -> Decimal:
    """What is left of a grant; of a pack not paid yet (pending: no grant entry yet), all its
    credit less what credit notes took back of it already."""
    left = credits.remaining(session, [grant.id])[grant.id]
    return left + grant.amount if grant.status == "pending" else left


GIVEN_BACK = {"refunded": (journal.REFUNDS, "refunded"), "credited": (CREDIT_NOTES, "credited by a credit note")}


def _give_back(session: Session, grant: credits.Grant, invoice_id: str, net: Decimal, currency: str, now: datetime,
               *, kind: str) -> tuple[Decimal, Decimal]:
    """A pack's money given back (a refund, a credit note): its unused credit voided, and entry
    `credits:<kind>:<grant>`: Dr `deferred_revenue` what it still deferred (`left`) / Cr the
    contra-revenue account of the money given back up to `net` (`back`) / Cr breakage the rest.
    The report: `back` billed back out of what waits, the rest earned. (left, back)."""
    account, what = GIVEN_BACK[kind]
    unused = _unused(session, grant)
    credits.void_grant(session, grant.id, now, reason=f"credit pack {what} (invoice {invoice_id})")
    total = booked(session, invoice_id)
    left = total - earned(total, grant.amount, grant.amount - unused, currency)
    back = min(left, max(net, ZERO))
    journal.post_entry(session, f"credits:{kind}:{grant.id}", now, currency, [
        Posting(DEFERRED, debit=left), Posting(account, credit=back), Posting(BREAKAGE, credit=left - back)],
        f"credit pack {what}: its unused credit taken back ({invoice_id})", grant.id)
    day = now.date()
    write_report(session, f"credits:{kind}:{grant.id}", grant.customer_id, invoice_id, currency,
            [(day, UNEARNED, -back), *earned_rows(day, left - back)])
    return left, back


def credit_pack_note(session: Session, customer_id: str, invoice_id: str, note_id: str, net: Decimal,
                     currency: str, now: datetime) -> bool:
    """A credit note (not a refund) of `net` on a pack's own invoice: the matching share of the
    pack's credit leaves the wallet (_credit_back) and what it deferred is reversed against
    `credit_notes`; the report bills the note back there, what it credits beyond that share
    (credit already used, or the grant already gone) billed back in the note's month. False
    when the invoice sold no credit: the caller spreads the note over the invoice's schedule
    as any invoice's."""
    grant = credits.grant_sold_by(session, customer_id, invoice_id)
    if grant is None:
        return False
    back = ZERO
    if grant.status in ("active", "pending"):  # a pack not paid yet: its credit counts once paid, less the share
        back = _credit_back(session, grant, invoice_id, note_id, net, currency, now)[1]
    day = now.date()
    write_report(session, f"credits:note:{note_id}", customer_id, invoice_id, currency, [(day, month_of(day), back - net)])
    return True


def _credit_back(session: Session, grant: credits.Grant, invoice_id: str, note_id: str, net: Decimal, currency: str,
                 now: datetime, *, kind: str = "credited") -> tuple[Decimal, Decimal]:
    """The share of the pack's credit a credit note (`kind` credited) or a refund's note
    (`refunded`) of `net` gives back (`credit_share`: net x credit / price, in the grant's unit)
    taken back as a `reduced` entry, and entry `credits:reduced:<note>`: Dr `deferred_revenue`
    that share's deferral (the same telescoping `earned` as a use, so the pack still ends at
    exactly what it deferred) / Cr `credit_notes` (`refunds` for a refund) up to `net` / Cr
    breakage the rest (a rounding cent). A share of all the unused credit or more gives all of
    it back (_give_back: the grant voided, its whole deferral reversed). (deferral moved, the
    part of it against the note or refund)."""
    total = booked(session, invoice_id)
    unused = _unused(session, grant)
    share = credits.credit_share(grant.amount, total, net, grant.unit)
    if total <= ZERO or share >= unused:
        return _give_back(session, grant, invoice_id, net, currency, now, kind=kind)
    if share <= ZERO:
        return ZERO, ZERO
    account, _ = GIVEN_BACK[kind]
    doc = "refund" if kind == "refunded" else "credit note"
    credits.reduce_grant(session, grant.id, share, now, invoice_id=invoice_id,
                         reason=f"{doc} {note_id} on the pack's invoice {invoice_id}")
    before = grant.amount - unused
    moved = earned(total, grant.amount, before + share, currency) - earned(total, grant.amount, before, currency)
    back = min(moved, max(net, ZERO))
    entry_id = f"credits:reduced:{note_id}"
    journal.post_entry(session, entry_id, now, currency, [
        Posting(DEFERRED, debit=moved), Posting(account, credit=back), Posting(BREAKAGE, credit=moved - back)],
        f"{doc} {note_id}: {share} {grant.unit} of the pack's credit taken back ({invoice_id})", grant.id)
    day = now.date()
    write_report(session, entry_id, grant.customer_id, invoice_id, currency,
            [(day, UNEARNED, -back), *earned_rows(day, moved - back)])
    return moved, back


def refund_credit_pack(session: Session, customer_id: str, invoice_id: str, note_id: str, refunded_net: Decimal,
                       currency: str, *, service: PaymentService) -> bool:
    """post_refund at the payment service's time (the refund door's operation calls it)."""
    return post_refund(session, customer_id, invoice_id, note_id, refunded_net, currency, service.now())


CONSUMER = "payments.credits"


def handle_credits_expired(session: Session, envelope: dict[str, Any], *, service: PaymentService) -> None:
    """`credits.expired` (grant_id, unit, amount): a pack's unused credit is breakage revenue.
    Custom units (tokens) carry no money here: only a grant in the event's currency unit."""
    now = service.now()
    if not mark_processed(session, CONSUMER, str(envelope["id"]), now):
        return
    props = envelope.get("properties") or {}
    unit = str(props.get("unit") or "")
    if not props.get("grant_id") or len(unit) != 3 or not unit.isupper():
        return
    post_expiry(session, str(props["grant_id"]), Decimal(str(props.get("amount") or "0")), unit, now)


def sold_in(session: Session, invoice_id: str | None) -> str | None:
    """The currency a pack was sold in (its `credits:sold` entry); None: nothing was deferred."""
    if invoice_id is None:
        return None
    return session.scalars(select(JournalLine.currency).where(
        JournalLine.entry_id == f"credits:sold:{invoice_id}").limit(1)).first()


def handle_credits_voided(session: Session, envelope: dict[str, Any], *, service: PaymentService) -> None:
    """`credits.voided` (grant_id, unit, amount): an operator took a pack's credit back
    (`POST /v1/wallet/grants/{id}/void`): what it still deferred is earned as breakage, as an
    expiry's (`credits:voided:<grant>`), money and token packs alike (in the currency the pack
    was sold in). A refund's or a credit note's own void posted its entry already: nothing more."""
    now = service.now()
    if not mark_processed(session, CONSUMER, str(envelope["id"]), now):
        return
    props = envelope.get("properties") or {}
    grant_id = str(props.get("grant_id") or "")
    if not grant_id:
        return
    given = session.scalars(select(JournalLine.entry_id).where(JournalLine.entry_id.in_(
        [f"credits:{k}:{grant_id}" for k in (*GIVEN_BACK, "voided")])).limit(1)).first()
    currency = sold_in(session, credits.get_grant(session, grant_id).invoice_id)
    if given is None and currency is not None:
        post_expiry(session, grant_id, Decimal(str(props.get("amount") or "0")), currency, now, kind="voided")


def post_returns(session: Session, invoice_id: str, now: datetime) -> int:
    """A voided invoice that wallet credit paid: sales gave the credit back to its grants; each
    `credits:used` entry of the invoice is reversed with the invoice's revenue and tax for that
    part (the void entry reverses only what was still receivable): entry
    `credits:returned:<invoice>:<grant>`: Dr `credit_notes` (net), Dr `tax_payable` (the
    invoice's proportion) / Cr `deferred_revenue`, Cr `discounts` (as the use had them). A pack
    whose grant had expired or been voided gets nothing back to spend (the wallet took it again):
    the share deferred again is earned at once (_post_lapse)."""
    prefix = f"credits:used:{invoice_id}:"
    rows = session.execute(select(JournalLine).where(JournalLine.entry_id >= prefix, JournalLine.entry_id < f"{prefix}~")
                           .order_by(JournalLine.entry_id, JournalLine.line_no)).scalars()
    used: dict[str, list[JournalLine]] = defaultdict(list)
    for row in rows:
        used[row.entry_id].append(row)
    lapsed = credits.lapsed_on_void(session, invoice_id)
    for entry_id, lines in used.items():
        grant_id, currency = entry_id.removeprefix(prefix), lines[0].currency
        amount = sum((r.credit for r in lines if r.account == journal.CUSTOMER_CREDIT), ZERO)
        split = split_credit(session, invoice_id, amount, currency)
        journal.post_entry(session, f"credits:returned:{invoice_id}:{grant_id}", now, currency, [
            Posting(CREDIT_NOTES, debit=split.net), Posting(split.tax_account, debit=split.tax),
            *(Posting(r.account, credit=r.debit) for r in lines if r.account in (DEFERRED, DISCOUNTS))],
            f"invoice {invoice_id} voided: wallet credit given back", grant_id)
        back = sum((r.debit for r in lines if r.account == DEFERRED), ZERO)
        if back:  # the report: the pack's share of the use waits on "credits" again
            grant = credits.get_grant(session, grant_id)
            write_report(session, f"credits:returned:{invoice_id}:{grant_id}", grant.customer_id, grant.invoice_id, currency,
                    [(now.date(), UNEARNED, back)])
            if lapsed.get(grant_id, ZERO) > ZERO:
                _post_lapse(session, grant, invoice_id, back, currency, now)
        schedule_credit(session, invoice_id, f"void-credit:{invoice_id}:{grant_id}", split.net, when=now)
    return len(used)


def _post_lapse(session: Session, grant: credits.Grant, invoice_id: str, back: Decimal, currency: str,
                now: datetime) -> None:
    """The credit a void gave back to a pack's grant that had expired or been voided was taken
    again at once (the wallet's `expiry` or `void` entry naming the invoice): the share `credits:returned` deferred again (`back`) is
    earned as an expiry's is, entry `credits:lapsed:<invoice>:<grant>`: Dr `deferred_revenue` /
    Cr breakage, and the report earns it the day of the void. The wallet gives back all a use
    took or none of it, so what lapsed is all of that use and its whole share is earned."""
    entry_id = f"credits:lapsed:{invoice_id}:{grant.id}"
    journal.post_entry(session, entry_id, now, currency, [Posting(DEFERRED, debit=back), Posting(BREAKAGE, credit=back)],
                       f"invoice {invoice_id} voided after credit pack {grant.id} ended: the credit given back lapsed",
                       grant.id)
    write_report(session, entry_id, grant.customer_id, grant.invoice_id, currency, earned_rows(now.date(), back))


def post_balance_return(session: Session, invoice_id: str, now: datetime) -> bool:
    """A voided invoice that the customer's credit balance (credit notes to the balance, not the
    wallet) paid in part: sales gives that part back to the balance; the void entry reversed only
    what was still receivable, so entry `void-balance:<invoice>` reverses the rest: Dr
    `credit_notes` (net) and Dr `tax_payable` (its tax, in the invoice's proportion, half-even as
    a credit note's) / Cr `customer_credit`, and the schedule by that net. The balance's part is
    what the invoice entry debited `customer_credit` with, less what the wallet's grants paid
    (their `credits:used` entries; post_returns gives those back). False when there is none."""
    applied = sum(session.scalars(select(JournalLine.debit).where(
        JournalLine.entry_id == f"inv:{invoice_id}", JournalLine.account == journal.CUSTOMER_CREDIT)), ZERO)
    prefix = f"credits:used:{invoice_id}:"
    wallet = sum(session.scalars(select(JournalLine.credit).where(
        JournalLine.entry_id >= prefix, JournalLine.entry_id < f"{prefix}~",
        JournalLine.account == journal.CUSTOMER_CREDIT)), ZERO)
    balance = applied - wallet
    if balance <= ZERO:
        return False
    currency = session.scalars(select(JournalLine.currency).where(JournalLine.entry_id == f"inv:{invoice_id}")).first()
    split = split_credit(session, invoice_id, balance, str(currency))
    journal.post_entry(session, f"void-balance:{invoice_id}", now, str(currency), [
        Posting(CREDIT_NOTES, debit=split.net), Posting(split.tax_account, debit=split.tax),
        Posting(journal.CUSTOMER_CREDIT, credit=balance)],
        f"invoice {invoice_id} voided: the customer's credit balance given back", invoice_id)
    schedule_credit(session, invoice_id, f"void-balance:{invoice_id}", split.net, when=now)
    return True


def handle_credit_returned(session: Session, envelope: dict[str, Any], *, service: PaymentService) -> None:
    """`invoice.voided`: the journal gives back what wallet credit (post_returns) and the
    customer's credit balance (post_balance_return) paid of it."""
    now = service.now()
    if not mark_processed(session, CONSUMER, str(envelope["id"]), now):
        return
    invoice_id = (envelope.get("properties") or {}).get("invoice_id")
    if invoice_id:
        post_returns(session, str(invoice_id), now)
        post_balance_return(session, str(invoice_id), now)
