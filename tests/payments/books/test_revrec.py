"""Revenue recognition schedules (engine/payments/books/revrec.py), pure."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.payments.books.revrec import ScheduleLine, credit_schedule, line_schedule, month_of

D = Decimal


def test_worked_example_one_year_subscription_daily_straight_line() -> None:
    """The illustration of "Subscription Revenue Recognition: ASC 606, Common Terminology and
    Inconsistencies" (ikiplan.xyz, step 5): a one-year subscription of $1,200 from 1 January 2023,
    recognised daily over 365 days, January's share being 31 days. The article rounds the daily
    rate first ($3.29 x 31 = $101.99); the exact figure, rounded once, is 1200 x 31 / 365 = 101.92."""
    rows = dict(line_schedule(ScheduleLine(D("1200.00"), "USD", "subscription", date(2023, 1, 1),
                                           date(2023, 1, 1), date(2024, 1, 1))))
    assert rows[date(2023, 1, 1)] == D("101.92")
    assert rows[date(2023, 2, 1)] == D("92.05")  # 1200 x 59/365 = 193.97, less January's 101.92
    assert len(rows) == 12 and sum(rows.values()) == D("1200.00")
    deferred_after_january = D("1200.00") - rows[date(2023, 1, 1)]
    assert deferred_after_january == D("1098.08")


def test_usage_in_its_period_one_time_at_delivery() -> None:
    usage = line_schedule(ScheduleLine(D("30.00"), "CHF", "usage", date(2026, 2, 1), date(2026, 1, 1), date(2026, 2, 1)))
    assert usage == [(date(2026, 1, 1), D("30.00"))]  # billed in February, earned in January
    once = line_schedule(ScheduleLine(D("99.00"), "CHF", "one_time", date(2026, 3, 14), date(2026, 3, 14),
                                      date(2026, 3, 15)))
    assert once == [(date(2026, 3, 1), D("99.00"))]


def test_proration_credit_reverses_what_it_replaces() -> None:
    """A monthly fee of 31.00 for January (1.00 a day) and, on an upgrade on the 16th, the credit
    for the unused 16 days: together they earn exactly the 15 days used, all in January."""
    fee = line_schedule(ScheduleLine(D("31.00"), "CHF", "subscription", date(2026, 1, 1), date(2026, 1, 1),
                                     date(2026, 2, 1)))
    credit = line_schedule(ScheduleLine(D("-16.00"), "CHF", "subscription", date(2026, 1, 16), date(2026, 1, 16),
                                        date(2026, 2, 1)))
    assert fee + credit == [(date(2026, 1, 1), D("31.00")), (date(2026, 1, 1), D("-16.00"))]


def test_credit_note_folds_earned_months_into_its_own() -> None:
    invoice = [(date(2026, 1, 1), D("100.00")), (date(2026, 2, 1), D("100.00")), (date(2026, 3, 1), D("100.00"))]
    rows = credit_schedule(D("150.00"), "CHF", invoice, date(2026, 2, 10))
    assert rows == [(date(2026, 2, 1), D("-100.00")), (date(2026, 3, 1), D("-50.00"))]


lines = st.builds(
    lambda cents, start, days, kind, billed: ScheduleLine(D(cents) / 100, "CHF", kind, start + timedelta(days=billed),
                                                         start, start + timedelta(days=days)),
    st.integers(-10**7, 10**7), st.dates(date(2025, 1, 1), date(2027, 12, 31)), st.integers(0, 800),
    st.sampled_from(["subscription", "usage", "one_time"]), st.integers(-40, 40))


@settings(max_examples=300, deadline=None)
@given(st.lists(lines, min_size=1, max_size=6), st.integers(0, 100), st.integers(0, 500))
def test_recognised_plus_deferred_is_invoiced_net_of_credits(items: list[ScheduleLine], percent: int,
                                                            offset: int) -> None:
    """Over random invoice lines and a credit note of a share of them: at every month's end,
    what is recognised so far plus what is still deferred equals what was invoiced less the
    credit, and every schedule adds up to its line exactly."""
    rows = []
    for line in items:
        schedule = line_schedule(line)
        assert sum(v for _, v in schedule) == line.amount
        rows += schedule
    invoiced = sum((x.amount for x in items), D(0))
    credit = (invoiced * percent / 100).quantize(D("0.01"))
    issued = min(x.delivered for x in items) + timedelta(days=offset)
    credit_rows = credit_schedule(credit, "CHF", rows, issued)
    assert sum(v for _, v in credit_rows) == -credit
    everything = rows + credit_rows
    for m in sorted({month_of(x) for x, _ in everything}):
        recognised = sum((v for x, v in everything if x <= m), D(0))
        deferred = sum((v for x, v in everything if x > m), D(0))
        assert recognised + deferred == invoiced - credit
