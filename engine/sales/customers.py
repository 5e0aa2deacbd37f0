"""Customers: who is billed, where they are taxed, how they are reached."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from engine.clock import Clock
from engine.money import KNOWN_CURRENCIES
from engine.sales.common import new_id, now_of, number, whole_between
from engine.sales.errors import Conflict, NotFound, SalesError, required_id
from engine.sales.models import Customer
from engine.store import add_event

_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
# Not @ and no kind of space: every character str.strip() removes and every one the regex
# dialects of Python, pydantic (Rust) and ECMA 262 call \s, spelled out, so that the pattern
# the API documents (engine.api.routes.billing) means the same to every validator.
_MAILBOX_CHAR = r"[^@\x00-\x20\x7f-\xa0\u1680\u2000-\u200b\u2028\u2029\u202f\u205f\u3000\ufeff]"
EMAIL_PATTERN = rf"^{_MAILBOX_CHAR}+@{_MAILBOX_CHAR}+\.{_MAILBOX_CHAR}+$"
_EMAIL = re.compile(EMAIL_PATTERN)
_PHONE = re.compile(r"^\+?[0-9 ()./-]{4,40}$")
CHANNELS = ("email", "sms", "in_app", "webhook")
FIELDS = (
    "id",
    "name",
    "email",
    "phone",
    "country",
    "currency",
    "segment",
    "tags",
    "attributes",
    "channels",
    "preferred_channels",
    "tax_id",
    "timezone",
    "payment_method",
)


def _opt_str(data: Mapping[str, Any], key: str, limit: int) -> str | None:
    value = data.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise SalesError(key, "must be a string")
    value = value.strip()
    if len(value) > limit:
        raise SalesError(key, f"longer than {limit} characters")
    return value


def _validated(data: Mapping[str, Any], *, partial: bool = False) -> dict[str, Any]:
    """The customer's fields, each checked in `_CHECKS`'s order (the first bad one raises,
    naming the field); `partial`: only those given (an update)."""
    if not isinstance(data, Mapping):
        raise SalesError("customer", "a customer is an object")
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise SalesError(unknown[0], f"unknown field; a customer has {', '.join(FIELDS)}")
    out: dict[str, Any] = {}
    for key, check in _CHECKS:
        # `preferred_channels` is the FORMATS name of `channels` (the older spelling)
        given = "preferred_channels" if key == "channels" and "preferred_channels" in data else key
        if not partial or given in data:
            out[key] = check(data, given)
    return out


def _name(data: Mapping[str, Any], key: str) -> str:
    return _opt_str(data, key, 200) or ""


def _email(data: Mapping[str, Any], key: str) -> str | None:
    email = _opt_str(data, key, 320)
    if email is not None and not _EMAIL.match(email):
        raise SalesError(key, f"{email!r} is not an email address")
    return email


def _phone(data: Mapping[str, Any], key: str) -> str | None:
    phone = _opt_str(data, key, 40)
    if phone is not None and not _PHONE.match(phone):
        raise SalesError(key, f"{phone!r} is not a phone number")
    return phone


def _country(data: Mapping[str, Any], key: str) -> str | None:
    country = _opt_str(data, key, 2)
    if country is None:
        return None
    if not re.fullmatch(r"[A-Za-z]{2}", country):
        raise SalesError(key, f"{country!r} is not an ISO 3166-1 alpha-2 code (e.g. DE)")
    return country.upper()


def _currency(data: Mapping[str, Any], key: str) -> str | None:
    currency = _opt_str(data, key, 3)
    if currency is None:
        return None
    currency = currency.upper()
    if currency not in KNOWN_CURRENCIES:
        raise SalesError(key, f"{currency!r} is not an ISO 4217 currency we know")
    return currency


def _short(data: Mapping[str, Any], key: str) -> str | None:
    return _opt_str(data, key, 100)


def _method(data: Mapping[str, Any], key: str) -> str | None:
    return _opt_str(data, key, 200)


def _timezone(data: Mapping[str, Any], key: str) -> str:
    tz = _opt_str(data, key, 64) or "UTC"
    try:
        ZoneInfo(tz)
    except Exception:
        raise SalesError(key, f"{tz!r} is not an IANA time zone (e.g. Europe/Zurich)") from None
    return tz


def _tags(data: Mapping[str, Any], key: str) -> list[str]:
    tags = data.get(key) or []
    if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
        raise SalesError(key, "a list of non-empty strings")
    return list(dict.fromkeys(tags))


def _attributes(data: Mapping[str, Any], key: str) -> dict[str, Any]:
    attrs = data.get(key) or {}
    if not isinstance(attrs, Mapping):
        raise SalesError(key, "an object")
    return dict(attrs)


def _channels(data: Mapping[str, Any], key: str) -> list[str]:
    channels = data.get(key) or []
    if not isinstance(channels, list) or any(c not in CHANNELS for c in channels):
        raise SalesError(key, f"a list of {', '.join(CHANNELS)}")
    return list(dict.fromkeys(channels))


_CHECKS: tuple[tuple[str, Callable[[Mapping[str, Any], str], Any]], ...] = (
    ("name", _name),
    ("email", _email),
    ("phone", _phone),
    ("country", _country),
    ("currency", _currency),
    ("segment", _short),
    ("tax_id", _short),
    ("payment_method", _method),
    ("timezone", _timezone),
    ("tags", _tags),
    ("attributes", _attributes),
    ("channels", _channels),
)


def create_customer(session: Session, data: Mapping[str, Any], *, clock: Clock) -> dict[str, Any]:
    """Create a customer (FORMATS §4 `POST /v1/customers`) and write `customer.created`."""
    fields = _validated(data)
    cid = data.get("id")
    if cid is None:
        cid = new_id("cus")
    elif not isinstance(cid, str) or not _ID.match(cid):
        raise SalesError("id", "letters, digits and _.:- only, at most 64 characters")
    if session.get(Customer, cid) is not None:
        raise Conflict("id", f"customer {cid!r} already exists")
    now = now_of(clock)
    row = Customer(id=cid, created_at=now, **fields)
    session.add(row)
    session.flush()
    add_event(session, "customer.created", cid, customer_to_dict(row), time=now)
    return customer_to_dict(row)


def update_customer(session: Session, customer_id: str, data: Mapping[str, Any], *, clock: Clock) -> dict[str, Any]:
    if "id" in data and data["id"] != customer_id:
        raise SalesError("id", "a customer's id cannot change")
    row = load_customer(session, customer_id)
    fields = _validated({k: v for k, v in data.items() if k != "id"}, partial=True)
    for key, value in fields.items():
        setattr(row, key, value)
    add_event(session, "customer.updated", customer_id, {"changed": sorted(fields)}, time=now_of(clock))
    return customer_to_dict(row)


def load_customer(session: Session, customer_id: Any, field: str = "customer_id") -> Customer:
    required_id(customer_id, field, "a customer id")
    row = session.get(Customer, customer_id)
    if row is None:
        raise NotFound(field, f"unknown customer {customer_id!r}")
    return row


def customer_to_dict(c: Customer) -> dict[str, Any]:
    return {
        "id": c.id,
        "name": c.name,
        "email": c.email,
        "phone": c.phone,
        "country": c.country,
        "currency": c.currency,
        "segment": c.segment,
        "tags": list(c.tags or []),
        "attributes": dict(c.attributes or {}),
        "preferred_channels": list(c.channels or []),
        "tax_id": c.tax_id,
        "timezone": c.timezone,
        "payment_method": c.payment_method,
        "credit_balance": number(c.credit_balance),
        "created_at": c.created_at.isoformat(),
    }


def get_customer(session: Session, customer_id: str) -> dict[str, Any]:
    return customer_to_dict(load_customer(session, customer_id))


def tax_subject(c: Customer) -> dict[str, Any]:
    """What `engine.pricing.tax_for` reads."""
    return {"country": c.country, "tax_id": c.tax_id, "segment": c.segment}


def list_customers(
    session: Session, page: int = 1, per_page: int = 50, *, segment: str | None = None, tag: str | None = None
) -> dict[str, Any]:
    """Customers by id, one page at a time (the console's list)."""
    from sqlalchemy import select

    if not whole_between(page, 1):
        raise SalesError("page", "a page number, 1 or more")
    if not whole_between(per_page, 1, 1000):
        raise SalesError("per_page", "between 1 and 1000")
    stmt = select(Customer)
    if segment is not None:
        stmt = stmt.where(Customer.segment == segment)
    rows = list(session.scalars(stmt.order_by(Customer.id)))
    if tag is not None:
        rows = [c for c in rows if tag in (c.tags or [])]
    total = len(rows)  # every matching row is read (the tag filter runs here), so no count query
    items = rows[(page - 1) * per_page : page * per_page]
    return {"items": [customer_to_dict(c) for c in items], "page": page, "per_page": per_page, "total": total}
