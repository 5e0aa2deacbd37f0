"""Calendar-correct billing periods.

Periods are half-open date ranges [start, end). Month and year periods are computed from the
anchor, not from the previous period, so an anchor on the 31st renews Feb 28/29 and then
Mar 31 again (never drifting to the 28th).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from dateutil.relativedelta import relativedelta

INTERVALS = ("day", "week", "month", "year", "once")


def iso_or_none(value: date | None) -> str | None:
    """A date or time as ISO 8601 for a document or an event, None where there is none."""
    return value.isoformat() if value is not None else None


@dataclass(frozen=True, slots=True)
class Period:
    start: date
    end: date

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError(f"a period must end after it starts ({self.start} .. {self.end})")

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    @property
    def start_at(self) -> datetime:
        return datetime.combine(self.start, time(0), UTC)

    @property
    def end_at(self) -> datetime:
        return datetime.combine(self.end, time(0), UTC)

    def __str__(self) -> str:
        return f"{self.start.isoformat()}/{self.end.isoformat()}"

    @classmethod
    def parse(cls, text: str) -> Period:
        try:
            a, b = text.split("/")
            return cls(date.fromisoformat(a.strip()), date.fromisoformat(b.strip()))
        except ValueError as exc:
            raise ValueError(
                f"{text!r} is not a period: write START/END as ISO dates, e.g. 2026-11-01/2026-12-01"
                + (f" ({exc})" if "must end" in str(exc) else "")
            ) from None


def period_boundary(anchor: date, interval: str, n: int, count: int = 1) -> date:
    """The start of the n-th period after `anchor` (n=0 is the anchor itself)."""
    step = _STEPS.get(interval)
    if step is None:
        raise ValueError(f"unknown interval {interval!r}")
    delta, unit, counted = step
    return anchor + delta(**{unit: n * count if counted else n})


# Each interval's step: the delta type, its unit, and whether `count` periods make one step
# (a one-time "period" is always one day).
_STEPS: dict[str, tuple[Callable[..., timedelta | relativedelta], str, bool]] = {
    "day": (timedelta, "days", True),
    "week": (timedelta, "weeks", True),
    "month": (relativedelta, "months", True),
    "year": (relativedelta, "years", True),
    "once": (timedelta, "days", False),
}


def period_at(anchor: date, interval: str, on: date, count: int = 1) -> tuple[int, Period]:
    """The index and period (anchored at `anchor`) that holds the day `on`."""
    if on < anchor:
        raise ValueError(f"{on} is before the anchor {anchor}")
    # Estimate, then walk: cheap and exact for every interval.
    if interval in ("day", "once"):
        n = (on - anchor).days // count if interval == "day" else (on - anchor).days
    elif interval == "week":
        n = (on - anchor).days // (7 * count)
    elif interval == "month":
        n = ((on.year - anchor.year) * 12 + on.month - anchor.month) // count
    else:
        n = (on.year - anchor.year) // count
    n = max(n - 1, 0)
    while period_boundary(anchor, interval, n + 1, count) <= on:
        n += 1
    return n, Period(period_boundary(anchor, interval, n, count), period_boundary(anchor, interval, n + 1, count))


def calendar_period(interval: str, on: date) -> Period:
    """The calendar-aligned period holding `on`: the month, the ISO week, the year, the day."""
    if interval == "month":
        start = on.replace(day=1)
        return Period(start, start + relativedelta(months=1))
    if interval == "year":
        start = on.replace(month=1, day=1)
        return Period(start, start + relativedelta(years=1))
    if interval == "week":
        start = on - timedelta(days=on.weekday())
        return Period(start, start + timedelta(weeks=1))
    if interval in ("day", "once"):
        return Period(on, on + timedelta(days=1))
    raise ValueError(f"unknown interval {interval!r}")
