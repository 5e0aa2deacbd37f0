"""Durations as the rules write them: `30m`, `12h`, `3d`, `2w`, `1mo` (calendar months)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from dateutil.relativedelta import relativedelta

DURATION_PATTERN = r"^([1-9][0-9]*)(m|h|d|w|mo|y)$"
_RE = re.compile(DURATION_PATTERN)


@dataclass(frozen=True, slots=True)
class Duration:
    count: int
    unit: str  # m h d w mo y

    def after(self, when: datetime) -> datetime:
        return when + _ONE[self.unit] * self.count

    def __str__(self) -> str:
        return f"{self.count}{self.unit}"


# One of each unit; months and years are calendar ones (1mo after 31 Jan is 28/29 Feb).
_ONE: dict[str, timedelta | relativedelta] = {
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
    "mo": relativedelta(months=1),
    "y": relativedelta(years=1),
}


def parse_duration(text: str) -> Duration:
    m = _RE.match(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a duration: write a whole number and a unit, e.g. 30m, 12h, 3d, 2w, 1mo")
    return Duration(int(m.group(1)), m.group(2))


def up_to(limit: int) -> str:
    """A regex alternation for the whole numbers 1 to `limit` without leading zeros, the
    way DURATION_PATTERN writes counts (for schemas that bound a duration)."""
    digits = str(limit)
    shorter = [f"[1-9][0-9]{{0,{len(digits) - 2}}}"] if len(digits) > 1 else []
    same_length = []
    for i, digit in enumerate(digits):
        lowest = 1 if i == 0 else 0
        if int(digit) > lowest:
            rest = len(digits) - i - 1
            below = str(lowest) if int(digit) - 1 == lowest else f"[{lowest}-{int(digit) - 1}]"
            same_length.append(f"{digits[:i]}{below}" + (f"[0-9]{{{rest}}}" if rest else ""))
    return "|".join([*shorter, *same_length, digits])
