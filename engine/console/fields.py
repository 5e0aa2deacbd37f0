"""Checks of single form fields, in words a pricing manager understands.

Pure functions: each takes what was typed (text, as forms give it) and returns the value the
catalog wants or a `FieldProblem` naming the form field. The builders collect every problem of
a form at once, so the page can mark each field in place and write nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from engine.console.yaml_edit import EditError
from engine.money import minor_units

# A unit price may be a fraction of a cent (0.002 per API call); more than this many decimals
# is a float's noise (0.30000000000000004), not a price anyone means.
UNIT_DECIMALS = 6


@dataclass(frozen=True)
class FieldProblem:
    field: str  # the form field, e.g. "tiers[2].unit_amount" or "trial_days"
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class FormInvalid(EditError):
    """A form with problems: nothing was written. `problems` names every field."""

    def __init__(self, problems: list[FieldProblem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


def blank(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and value != value:  # NaN: an emptied table cell
        return True
    return str(value).strip() in ("", "None", "nan", "null")


def _decimals(d: Decimal) -> int:
    exponent = d.normalize().as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def amount(value: Any, field: str, out: list[FieldProblem], *, currency: str = "USD",
           unit: bool = False) -> Decimal | None:
    """A money amount: a decimal, not negative, with no more decimals than the currency has
    (a fee) or than UNIT_DECIMALS (a unit price, which may be a fraction of a cent)."""
    text = str(value).strip()
    try:
        d = Decimal(text)
    except (InvalidOperation, ValueError):
        out.append(FieldProblem(field, f"{text!r} is not an amount; write a number such as 49.00"))
        return None
    if not d.is_finite():
        out.append(FieldProblem(field, f"{text!r} is not an amount; write a number such as 49.00"))
        return None
    if d < 0:
        out.append(FieldProblem(field, f"{text} is negative; a price is 0 or more"))
        return None
    most = UNIT_DECIMALS if unit else minor_units(currency)
    if _decimals(d) > most:
        what = f"a unit price has at most {most} decimals" if unit else f"{currency} amounts have {most} decimals"
        out.append(FieldProblem(field, f"{text} has {_decimals(d)} decimals; {what}"))
        return None
    return d


def percent(value: Any, field: str, out: list[FieldProblem]) -> Decimal | None:
    text = str(value).strip()
    try:
        d = Decimal(text)
    except (InvalidOperation, ValueError):
        out.append(FieldProblem(field, f"{text!r} is not a percentage; write a number from 0 to 100"))
        return None
    if not d.is_finite() or d < 0 or d > 100:
        out.append(FieldProblem(field, f"{text} is not a percentage from 0 to 100"))
        return None
    if _decimals(d) > 4:
        out.append(FieldProblem(field, f"{text} has {_decimals(d)} decimals; a percentage has at most 4"))
        return None
    return d


def whole(value: Any, field: str, out: list[FieldProblem], *, minimum: int = 0) -> int | None:
    text = str(value).strip()
    try:
        d = Decimal(text)
    except (InvalidOperation, ValueError):
        out.append(FieldProblem(field, f"{text!r} is not a whole number"))
        return None
    if not d.is_finite() or d != d.to_integral_value():
        out.append(FieldProblem(field, f"{text} is not a whole number"))
        return None
    if d < minimum:
        out.append(FieldProblem(field, f"{text} is below {minimum}"))
        return None
    return int(d)


def iso_date(value: Any, field: str, out: list[FieldProblem]) -> date | None:
    if isinstance(value, date):
        return value
    text = str(value).strip()
    try:
        return date.fromisoformat(text)
    except ValueError:
        out.append(FieldProblem(field, f"{text!r} is not a date; write it as YYYY-MM-DD"))
        return None


def date_range(start: Any, end: Any, out: list[FieldProblem], *, start_field: str = "valid_from",
               end_field: str = "valid_until") -> tuple[date | None, date | None]:
    """Optional start and end dates; an end before (or on) the start is refused."""
    a = None if blank(start) else iso_date(start, start_field, out)
    b = None if blank(end) else iso_date(end, end_field, out)
    if a is not None and b is not None and b < a:
        out.append(FieldProblem(end_field, f"{b.isoformat()} is before the start {a.isoformat()}"))
    return a, b


def money_text(d: Decimal) -> str:
    """How the catalog writes an amount: a decimal string, exactly as given (never a float)."""
    return format(d, "f")
