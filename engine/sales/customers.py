"""Customers: who is billed, where they are taxed, how they are reached."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from engine.clock import Clock
from engine.money import KNOWN_CURRENCIES
from engine.sales.common import new_id, now_of, number
from engine.sales.errors import Conflict, NotFound, SalesError
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
    if not isinstance(data, Mapping):
        raise SalesError("customer", "a customer is an object")
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise SalesError(unknown[0], f"unknown field; a customer has {', '.join(FIELDS)}")
    out: dict[str, Any] = {}
    if not partial or "name" in data:
        name = _opt_str(data, "name", 200)
        out["name"] = name or ""
    if not partial or "email" in data:
        email = _opt_str(data, "email", 320)
        if email is not None and not _EMAIL.match(email):
            raise SalesError("email", f"{email!r} is not an email address")
        out["email"] = email
    if not partial or "phone" in data:
        phone = _opt_str(data, "phone", 40)
        if phone is not None and not _PHONE.match(phone):
            raise SalesError("phone", f"{phone!r} is not a phone number")
        out["phone"] = phone
    if not partial or "country" in data:
        country = _opt_str(data, "country", 2)
        if country is not None:
            if not re.fullmatch(r"[A-Za-z]{2}", country):
                raise SalesError("country", f"{country!r} is not an ISO 3166-1 alpha-2 code (e.g. DE)")
            country = country.upper()
        out["country"] = country
    if not partial or "currency" in data:
        currency = _opt_str(data, "currency", 3)
        if currency is not None:
            currency = currency.upper()
            if currency not in KNOWN_CURRENCIES:
                raise SalesError("currency", f"{currency!r} is not an ISO 4217 currency we know")
        out["currency"] = currency
    for key in ("segment", "tax_id", "payment_method"):
        if not partial or key in data:
            out[key] = _opt_str(data, key, 200 if key == "payment_method" else 100)
    if not partial or "timezone" in data:
        tz = _opt_str(data, "timezone", 64) or "UTC"
        try:
            from zoneinfo import ZoneInfo

            ZoneInfo(tz)
        except Exception:
            raise SalesError("timezone", f"{tz!r} is not an IANA time zone (e.g. Europe/Zurich)") from None
        out["timezone"] = tz
    if not partial or "tags" in data:
        tags = data.get("tags") or []
        if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
            raise SalesError("tags", "a list of non-empty strings")
        out["tags"] = list(dict.fromkeys(tags))
    if not partial or "attributes" in data:
        attrs = data.get("attributes") or {}
        if not isinstance(attrs, Mapping):
            raise SalesError("attributes", "an object")
        out["attributes"] = dict(attrs)
    key = "preferred_channels" if "preferred_channels" in data else "channels"
    if not partial or key in data:
        channels = data.get(key) or []
        if not isinstance(channels, list) or any(c not in CHANNELS for c in channels):
            raise SalesError(key, f"a list of {', '.join(CHANNELS)}")
        out["channels"] = list(dict.fromkeys(channels))
    return out


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
    if not isinstance(customer_id, str) or not customer_id:
        raise SalesError(field, "required: a customer id")
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
    from sqlalchemy import func, select

    if isinstance(page, bool) or not isinstance(page, int) or page < 1:
        raise SalesError("page", "a page number, 1 or more")
    if isinstance(per_page, bool) or not isinstance(per_page, int) or not 1 <= per_page <= 1000:
        raise SalesError("per_page", "between 1 and 1000")
    stmt = select(Customer)
    if segment is not None:
        stmt = stmt.where(Customer.segment == segment)
    rows = list(session.scalars(stmt.order_by(Customer.id)))
    if tag is not None:
        rows = [c for c in rows if tag in (c.tags or [])]
    total = (
        len(rows) if tag is not None else int(session.scalar(select(func.count()).select_from(stmt.subquery())) or 0)
    )
    items = rows[(page - 1) * per_page : page * per_page]
    return {"items": [customer_to_dict(c) for c in items], "page": page, "per_page": per_page, "total": total}
