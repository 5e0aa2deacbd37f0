"""A customer's notification preferences: categories turned off, channels, quiet hours
and their time zone. Transactional categories cannot be turned off.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Table, bindparam, select
from sqlalchemy.orm import Session

from engine.messaging.models import NotificationPreference
from engine.messaging.templates import CHANNELS

PREFERENCES: Table = NotificationPreference.__table__  # type: ignore[assignment]
_SELECT_PREFS = select(PREFERENCES).where(PREFERENCES.c.customer_id == bindparam("cid"))


# Categories a customer cannot turn off: they carry money or the state of the account.
TRANSACTIONAL_CATEGORIES = frozenset({"invoices", "payments", "account", "security"})


# Quiet hours hold back what would wake someone; a feed entry or a webhook does not.
QUIET_HOURS_CHANNELS = frozenset({"email", "sms"})


# -- preferences ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Preferences:
    customer_id: str
    opted_out_channels: frozenset[str] = frozenset()
    opted_out_categories: frozenset[str] = frozenset()
    quiet_hours: tuple[time, time] | None = None
    timezone: str | None = None

    def allows(self, channel: str, category: str) -> bool:
        if category in TRANSACTIONAL_CATEGORIES:
            return True
        return channel not in self.opted_out_channels and \
            category not in self.opted_out_categories


def _parse_hhmm(text: str, what: str) -> time:
    try:
        hours, minutes = text.split(":")
        return time(int(hours), int(minutes))
    except ValueError as exc:
        raise ValueError(f"{what}: {text!r} is not HH:MM") from exc


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _prefs_from_row(customer_id: str, row: NotificationPreference | None) -> Preferences:
    # `row` is the ORM object or a Core row with the same attribute names.
    if row is None:
        return Preferences(customer_id)
    quiet = None
    if row.quiet_start and row.quiet_end:
        quiet = (_parse_hhmm(row.quiet_start, "quiet_start"), _parse_hhmm(row.quiet_end,
                                                                          "quiet_end"))
    return Preferences(customer_id, frozenset(row.opted_out_channels or ()),
                       frozenset(row.opted_out_categories or ()), quiet, row.timezone)


def get_preferences(session: Session, customer_id: str) -> Preferences:
    row = session.execute(_SELECT_PREFS, {"cid": customer_id}).first()
    return _prefs_from_row(customer_id, row)  # type: ignore[arg-type]


_UNSET: Any = object()


def set_preferences(
    session: Session,
    customer_id: str,
    *,
    now: datetime,
    opted_out_channels: Sequence[str] | None = None,
    opted_out_categories: Sequence[str] | None = None,
    quiet_hours: tuple[str, str] | None = _UNSET,
    timezone: str | None = _UNSET,
) -> Preferences:
    """Change a customer's preferences; arguments left out stay as they are.

    Raises ValueError for an unknown channel or time zone, a malformed quiet-hours time,
    or an opt-out of a transactional category (invoices, payments, account, security)."""
    row = session.get(NotificationPreference, customer_id)
    if row is None:
        row = NotificationPreference(customer_id=customer_id, opted_out_channels=[],
                                     opted_out_categories=[], updated_at=now)
        session.add(row)
    if opted_out_channels is not None:
        unknown = set(opted_out_channels) - set(CHANNELS)
        if unknown:
            raise ValueError(f"opted_out_channels: unknown channel(s) {sorted(unknown)}")
        row.opted_out_channels = sorted(set(opted_out_channels))
    if opted_out_categories is not None:
        locked = set(opted_out_categories) & TRANSACTIONAL_CATEGORIES
        if locked:
            raise ValueError(f"opted_out_categories: {sorted(locked)} are transactional "
                             "and cannot be turned off")
        row.opted_out_categories = sorted(set(opted_out_categories))
    if quiet_hours is not _UNSET:
        if quiet_hours is None:
            row.quiet_start = row.quiet_end = None
        else:
            start, end = quiet_hours
            _parse_hhmm(start, "quiet_hours start")
            _parse_hhmm(end, "quiet_hours end")
            row.quiet_start, row.quiet_end = start, end
    if timezone is not _UNSET:
        if timezone is not None:
            try:
                ZoneInfo(timezone)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise ValueError(f"timezone: unknown time zone {timezone!r}") from exc
        row.timezone = timezone
    row.updated_at = now
    session.flush()
    return _prefs_from_row(customer_id, row)


def quiet_hours_end(now: datetime, prefs: Preferences, customer_tz: str | None) -> \
        datetime | None:
    """When the customer's quiet hours end, if `now` falls inside them; else None."""
    if prefs.quiet_hours is None:
        return None
    start, end = prefs.quiet_hours
    if start == end:
        return None
    tz = _zone(prefs.timezone or customer_tz)
    local = now.astimezone(tz)
    t = local.time().replace(tzinfo=None)
    if start < end:
        inside = start <= t < end
        end_day = local.date()
    else:  # spans midnight, e.g. 22:00-07:00
        inside = t >= start or t < end
        end_day = local.date() + timedelta(days=1) if t >= start else local.date()
    if not inside:
        return None
    return datetime.combine(end_day, end, tzinfo=tz).astimezone(UTC)
