"""The money invariants, checked after every journey over what it touched: over HTTP where an
endpoint exists (invoices, quotes, subscriptions, the provider's own API, the SMTP server's
mailbox) and the database read-only otherwise (payments, notifications, the journal).

1. every provider charge is exactly one recorded payment (and every recorded provider
   payment is a charge the provider knows);
2. every invoice's total is the sum of its lines, and the lines of each closed period of a
   subscription (invoices less credit notes, changes, cancellations and late usage included)
   add up to `POST /v1/quotes` for that subscription and period; a period is closed once it
   ended, was cut short (a cancellation, a change of interval) or its subscription ended, and
   its late usage is billed by the day after it arrived (never overdue);
3. a closed invoice's paid + credited + written-off equals its total (a credit note's part put on the
   customer's balance is the customer's credit, not a settlement of the invoice);
4. no invoice line for a period after a cancellation;
5. every notification is sent or deliberately not sent (skipped, digested), none failed, and
   the SMTP server received each sent email exactly once;
6. the journal balances: debits = credits per currency;
7. what usage burned of each grant (`credits_grants.usage_burned`, what the burn and the access
   view read) is the sum of its usage consumptions (the entries naming no invoice).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

if TYPE_CHECKING:
    from tests.journeys.harness import Engine

D = Decimal
CLOSED = ("paid", "void", "uncollectible")
NOT_SENT_ON_PURPOSE = ("skipped", "digested")


def read_only(url: str) -> sa.Engine:
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        return sa.create_engine(f"sqlite:///file:{path}?mode=ro&uri=true")
    return sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1),
                            execution_options={"postgresql_readonly": True}, poolclass=sa.pool.NullPool)


def _when(text: str) -> datetime:
    """An instant; a bare date is midnight UTC (how periods are written)."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class Ledger:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.first = len(engine.created)

    @property
    def customers(self) -> list[str]:
        return self.engine.created[self.first:]

    def check(self) -> None:
        customers = self.customers
        if not customers:
            return
        self.engine.settle()  # what the journey's last calls set in motion is done
        db = read_only(self.engine.database_url)
        try:
            with db.connect() as conn:
                self.charges_are_payments(conn, customers)
                self.notifications_delivered(conn, customers)
                self.journal_balances(conn)
                self.usage_burned_is_the_entries(conn, customers)
                refunded = self.refunded_by_invoice(conn, customers)
                notes = self.credit_note_lines(conn, customers)
        finally:
            db.dispose()
        for customer in customers:
            invoices = self.engine.invoices(customer)
            self.invoices_add_up(invoices)
            self.closed_invoices_settled(invoices, refunded)
            subscriptions = self.engine.subscriptions(customer)
            self.nothing_after_cancellation(invoices, subscriptions)
            self.periods_equal_quotes(invoices, subscriptions, notes)

    # 1 ----------------------------------------------------------------------------------
    def charges_are_payments(self, conn: sa.Connection, customers: list[str]) -> None:
        provider = [p for p in self.engine.provider()["payments"] if p.get("customer") in customers]
        rows = conn.execute(sa.text(
            "SELECT provider_ref, customer_id, status FROM pay_payments WHERE provider = 'sandbox'")).all()
        recorded = Counter(r.provider_ref for r in rows if r.customer_id in customers and r.provider_ref)
        for charge in provider:
            assert recorded[charge["id"]] == 1, (
                f"provider charge {charge['id']} ({charge['status']}, {charge['amount']}) is recorded "
                f"{recorded[charge['id']]} times")
        known = {p["id"] for p in provider}
        stray = [ref for ref in recorded if ref not in known]
        assert not stray, f"payments recorded that the provider never made: {stray}"

    def refunded_by_invoice(self, conn: sa.Connection, customers: list[str]) -> dict[str, Decimal]:
        out: dict[str, Decimal] = defaultdict(Decimal)
        for row in conn.execute(sa.text(
                "SELECT invoice_id, customer_id, refunded_amount FROM pay_payments WHERE invoice_id IS NOT NULL")):
            if row.customer_id in customers:
                out[row.invoice_id] += D(str(row.refunded_amount or 0))
        # What a refund paid back beyond the invoice's total is an overpayment's credit repaid
        # (the credit ledger's `refunded` entries, negative), not a refund of the invoice.
        for row in conn.execute(sa.text(
                "SELECT invoice_id, customer_id, amount FROM pay_credit_ledger WHERE reason = 'refunded'")):
            if row.customer_id in customers and row.invoice_id:
                out[row.invoice_id] += D(str(row.amount))
        return out

    # 2 ----------------------------------------------------------------------------------
    def invoices_add_up(self, invoices: list[dict[str, Any]]) -> None:
        for inv in invoices:
            for key in ("total", "discount", "tax"):
                lines = sum((D(x[key]) for x in inv["lines"]), D(0))
                assert lines == D(inv[key]), f"invoice {inv['number']}: {key} {inv[key]} but its lines say {lines}"

    def credit_note_lines(self, conn: sa.Connection, customers: list[str]) -> dict[str, list[dict[str, Any]]]:
        """The lines of the customers' credit notes by subscription (no HTTP call lists the
        credit notes of a change, which go to the balance)."""
        out: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in conn.execute(sa.text("SELECT customer_id, subscription_id, lines FROM sales_credit_notes")):
            if row.customer_id in customers and row.subscription_id:
                lines = json.loads(row.lines) if isinstance(row.lines, str) else row.lines
                out[row.subscription_id] += lines or []
        return out

    def periods_equal_quotes(self, invoices: list[dict[str, Any]], subscriptions: list[dict[str, Any]],
                             notes: dict[str, list[dict[str, Any]]]) -> None:
        """What the invoices and credit notes say of each period that is over adds up to the
        quote of that subscription and period (the quote replays the period's history: its
        changes and their credits, coupons, rules and usage)."""
        now = _when(self.engine.now())
        for sub in subscriptions:
            due = sub.get("late_usage_due_at")
            assert due is None or _when(due) > now, f"{sub['id']}: late usage due {due} is not billed at {now}"
            if due is not None:
                continue  # late usage arrived today: its periods catch up with their quotes at `due`
            mine = [inv for inv in invoices if inv.get("subscription_id") == sub["id"]]
            periods: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
            for inv in mine:
                if inv["status"] == "void":
                    continue
                for line in inv["lines"]:
                    if line["period"]:
                        periods[(line["period"]["start"][:10], line["period"]["end"][:10])] += D(line["total"])
            for line in notes.get(sub["id"], []):
                # A change's or a cancellation's credit: its lines name the period ("start/end"),
                # with every figure positive; an operator's credit or a refund names none.
                if line.get("period"):
                    start, end = str(line["period"]).split("/")
                    periods[(start, end)] -= D(line["amount"]) - D(line.get("discount", "0")) + D(line.get("tax", "0"))
            current = sub.get("current_period") or {}
            ended = sub.get("ended_at")
            for (start, end), total in sorted(periods.items()):
                cut_short = start < str(current.get("start") or start)  # a change of interval closed it
                if _when(end) > now and not cut_short and not (ended and _when(ended) <= now):
                    continue  # still open: its usage is billed when it closes
                quote = self.engine.quote(subscription_id=sub["id"], period=f"{start}/{end}")
                assert D(quote["total"]) == total, (
                    f"{sub['id']} {start}/{end}: invoiced {total}, quoted {quote['total']} "
                    f"({quote['mid_period_changes']} changes in the period)")

    # 3 ----------------------------------------------------------------------------------
    def closed_invoices_settled(self, invoices: list[dict[str, Any]], refunded: dict[str, Decimal]) -> None:
        for inv in invoices:
            if inv["status"] not in CLOSED:
                continue
            paid = D(inv["amount_paid"]) - refunded.get(inv["id"], D(0)) + D(inv["credit_applied"])
            # A credit note's part to the balance is the customer's credit, not a settlement of
            # this invoice: a paid invoice credited to the balance was paid in full all the same.
            credited = sum((D(c["total"]) - D(c["to_balance"] or 0) for c in inv["credit_notes"]), D(0))
            total = D(inv["total"])
            if inv["status"] == "paid":
                assert paid + credited == total, (
                    f"invoice {inv['number']} paid: paid {paid} + credited {credited} != total {total}")
            else:  # void / uncollectible: what was neither paid nor credited is written off
                written_off = total - paid - credited
                assert D(0) <= written_off <= total, (
                    f"invoice {inv['number']} {inv['status']}: paid {paid} + credited {credited} exceed {total}")

    # 4 ----------------------------------------------------------------------------------
    def nothing_after_cancellation(self, invoices: list[dict[str, Any]], subscriptions: list[dict[str, Any]]) -> None:
        for sub in subscriptions:
            ended = sub.get("ended_at")
            if not ended:
                continue
            for inv in invoices:
                if inv.get("subscription_id") != sub["id"] or inv["status"] == "void":
                    continue
                late = [x for x in inv["lines"] if x["period"] and _when(x["period"]["start"]) >= _when(ended)]
                assert not late, f"invoice {inv['number']} bills {late[0]['period']} after {sub['id']} ended {ended}"

    # 5 ----------------------------------------------------------------------------------
    def notifications_delivered(self, conn: sa.Connection, customers: list[str]) -> None:
        rows = conn.execute(sa.text(
            "SELECT id, customer_id, template, channel, status, error FROM notifications")).all()
        mine = [r for r in rows if r.customer_id in customers]
        bad = [(r.template, r.channel, r.status, r.error) for r in mine
               if r.status not in ("sent", "pending", *NOT_SENT_ON_PURPOSE)]
        assert not bad, f"notifications not delivered: {bad}"
        # Pending here means due later (quiet hours, a digest), never one the advance left behind.
        received = Counter()
        for msg in self.engine.mails():
            received[str(msg.get("Message-ID", "")).strip("<>").split("@")[0]] += 1
        for r in mine:
            if r.channel == "email" and r.status == "sent":
                assert received[r.id] == 1, (
                    f"email {r.template} ({r.id}) to {r.customer_id} reached the SMTP server {received[r.id]} times")

    # 6 ----------------------------------------------------------------------------------
    def journal_balances(self, conn: sa.Connection) -> None:
        debits: dict[str, Decimal] = defaultdict(Decimal)
        credits: dict[str, Decimal] = defaultdict(Decimal)
        for row in conn.execute(sa.text("SELECT currency, debit, credit FROM pay_journal")):
            debits[row.currency] += D(str(row.debit))
            credits[row.currency] += D(str(row.credit))
        for currency in debits.keys() | credits.keys():
            assert debits[currency] == credits[currency], (
                f"journal {currency}: debits {debits[currency]} != credits {credits[currency]}")

    # 7 ----------------------------------------------------------------------------------
    def usage_burned_is_the_entries(self, conn: sa.Connection, customers: list[str]) -> None:
        burned: dict[str, Decimal] = defaultdict(Decimal)
        for row in conn.execute(sa.text("SELECT grant_id, customer_id, amount FROM credits_entries "
                                        "WHERE kind = 'consumption' AND invoice_id IS NULL")):
            if row.customer_id in customers:
                burned[row.grant_id] -= D(str(row.amount))
        for row in conn.execute(sa.text("SELECT id, customer_id, usage_burned FROM credits_grants")):
            if row.customer_id in customers:
                assert D(str(row.usage_burned)) == burned[row.id], (
                    f"grant {row.id}: usage_burned {row.usage_burned} != its usage entries {burned[row.id]}")
