"""Credit a customer's wallet the ways sales knows of: an operator's grant, a catalog grant,
and a credit pack bought (an invoice for its price; the credit counts once the invoice is paid).

Terms come from the catalog of the customer's latest subscription; `rollover: none` ends a
grant with the subscription's current period (the expiry job writes what is left off)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import credits
from engine.catalog.model import Catalog, CreditTerms
from engine.clock import Clock, FixedClock
from engine.credits.terms import grant_expiry
from engine.money import to_decimal
from engine.sales.catalog_versions import catalog_for_version
from engine.sales.charges import handle_charge_requested
from engine.sales.common import now_of
from engine.sales.customers import load_customer
from engine.sales.errors import Conflict, NotFound, SalesError
from engine.sales.models import Customer, Subscription
from engine.sales.queries import get_invoice

PACK_KEY = "pack:"


def _latest_subscription(session: Session, customer_id: str) -> Subscription | None:
    return session.scalars(select(Subscription).where(Subscription.customer_id == customer_id)
                           .order_by(Subscription.created_at.desc(), Subscription.id.desc()).limit(1)).first()


def _catalog(session: Session, customer: Customer) -> tuple[Catalog, Subscription]:
    sub = _latest_subscription(session, customer.id)
    if sub is None:
        raise Conflict("customer_id", f"customer {customer.id} has no subscription whose catalog names credits")
    return catalog_for_version(session, sub.catalog_version_id), sub


def _expiry(terms: CreditTerms, sub: Subscription | None, now: datetime) -> datetime | None:
    """expires_after from now; with rollover none, at the latest at the current period's end."""
    return grant_expiry(terms, now, sub.period_end if sub is not None else None)


def grant_credit(session: Session, customer_id: str, spec: Mapping[str, Any], *, clock: Clock,
                 created_by: str = "", source: str | None = None) -> dict[str, Any]:
    """An operator's grant: `grant` (a catalog grant's id, its terms) or `amount` with its own
    terms. Checks everything first (unknown customer: NotFound; bad terms: CreditsError)."""
    customer = load_customer(session, customer_id)
    now = now_of(clock)
    terms, amount, ref, grant_unit = _grant_terms(session, customer, spec, now)
    unit = _unit(session, customer, spec.get("unit") or grant_unit)
    expires_at = spec.get("expires_at")
    if expires_at is not None and "effective_at" not in spec and expires_at <= now:
        raise Conflict("expires_at", f"{expires_at.isoformat()} is not after now ({now.isoformat()}, "
                                     "the engine's clock), when the grant takes effect")
    req = credits.GrantRequest(
        customer_id=customer.id, unit=unit, amount=amount,
        source=source or ("operator" if ref is None else "promotion"),
        source_ref=ref, effective_at=spec.get("effective_at") or now, priority=terms.priority,
        expires_at=spec.get("expires_at") or _expiry(terms, _latest_subscription(session, customer.id), now),
        rollover=terms.rollover, reason=str(spec.get("reason") or ""), created_by=created_by,
        idempotency_key=spec.get("idempotency_key"),
    )
    req.check()
    customer.has_wallet = True
    grant = credits.add_grant(session, req, now)
    return credits.grant_to_dict(grant, credits.remaining(session, [grant.id])[grant.id])


def _unit(session: Session, customer: Customer, asked: str | None) -> str:
    """A currency (default: the customer's), or the custom unit their catalog's wallet is in:
    a grant in a unit nothing burns or prices would sit in the wallet for ever."""
    if not asked:
        return customer.currency or _catalog(session, customer)[0].currency
    if asked.isupper():
        return asked
    wallet = _catalog(session, customer)[0].tokens
    known = wallet.unit if wallet is not None else "none"
    if asked != known:
        raise Conflict("unit", f"unknown unit {asked!r}: the customer's catalog's custom unit is {known}")
    return asked


def grant_units(session: Session, customer_id: str) -> list[str]:
    """The units an operator may grant the customer: their currency (the default) and, when
    their catalog's wallet is in a custom unit (tokens), that unit."""
    customer = load_customer(session, customer_id)
    sub = _latest_subscription(session, customer.id)
    catalog = catalog_for_version(session, sub.catalog_version_id) if sub is not None else None
    money = customer.currency or (catalog.currency if catalog is not None else None)
    custom = catalog.tokens.unit if catalog is not None and catalog.tokens is not None else None
    return [u for u in (money, custom) if u]


def _grant_terms(session: Session, customer: Customer, spec: Mapping[str, Any],
                 now: datetime) -> tuple[CreditTerms, Decimal, str | None, str | None]:
    """(terms, amount, the catalog grant's id, the unit it is in when not the customer's
    currency). A catalog grant's amount is in the catalog wallet's unit (`credits.unit`): for a
    custom unit that unit, so 500 of a token catalog's grant are 500 tokens, not 500 dollars."""
    if spec.get("grant"):
        catalog, _sub = _catalog(session, customer)
        known = catalog.credits.grants if catalog.credits else {}
        if spec["grant"] not in known:
            raise NotFound("grant", f"unknown grant {spec['grant']!r}; the catalog has {', '.join(known) or 'none'}")
        g = known[spec["grant"]]
        custom = catalog.credits.unit if catalog.credits is not None and catalog.credits.custom else None
        return g.terms, _amount(spec["amount"]) if spec.get("amount") is not None else g.amount, g.id, custom
    if spec.get("amount") is None:
        raise SalesError("amount", "required: the amount to grant (or grant: a catalog grant's id)")
    terms = CreditTerms(priority=int(spec.get("priority", 100)), expires_after=spec.get("expires_after"),
                        rollover=str(spec.get("rollover", "all")))
    return terms, _amount(spec["amount"]), None, None


def _amount(value: Any, field: str = "amount") -> Decimal:
    try:
        return to_decimal(value, field)
    except ValueError as exc:
        raise SalesError(field, str(exc).removeprefix(f"{field}: ")) from None


def buy_pack(session: Session, customer_id: str, pack_id: str, *, key: str, clock: Clock,
             source: str = "pack") -> dict[str, Any]:
    """Invoice a catalog pack; its grant waits (pending) until the invoice is paid. One `key`,
    one purchase: the grant is written first, unique per key, so a retried call or a racing
    trigger (which waits on that row, then finds it) returns it and invoices nothing more."""
    customer = load_customer(session, customer_id)
    catalog, sub = _catalog(session, customer)
    packs = catalog.credits.packs if catalog.credits else {}
    if pack_id not in packs:
        raise NotFound("pack", f"unknown pack {pack_id!r}; the catalog has {', '.join(packs) or 'none'}")
    pack = packs[pack_id]
    now = now_of(clock)
    customer.has_wallet = True
    grant = credits.add_grant(session, credits.GrantRequest(
        customer_id=customer.id, unit=catalog.credits.unit if catalog.credits else catalog.currency,
        amount=pack.credit, source=source, source_ref=pack.id, effective_at=now, priority=pack.terms.priority,
        expires_at=_expiry(pack.terms, sub, now), rollover=pack.terms.rollover, reason=f"pack {pack.id}",
        idempotency_key=f"{PACK_KEY}{key}",
    ), now, pending=True)
    if grant.invoice_id is None:
        invoice = handle_charge_requested(session, {
            "id": f"{PACK_KEY}{customer.id}:{key}", "customer_id": customer.id, "time": now,
            "properties": {"amount": str(pack.price), "description": f"Credit pack: {pack.name}"},
        })
        grant.invoice_id = invoice["id"]
        if invoice["status"] == "paid":  # nothing to collect (a credit balance paid it)
            credits.activate(session, grant, now)
    else:
        invoice = get_invoice(session, grant.invoice_id)
    left = credits.remaining(session, [grant.id])[grant.id]
    return {"invoice": invoice, "grant": credits.grant_to_dict(grant, left)}


def handle_grant_requested(session: Session, envelope: Mapping[str, Any]) -> dict[str, Any]:
    """Bus handler for `credits.grant_requested` (properties grant, reason, key, rule): a rule's
    `grant_credit` action, the catalog grant's amount and terms, source `rule`. Its key is the
    grant's idempotency key: a redelivered event, or the rule firing again for the same cause,
    grants nothing more."""
    props = envelope.get("properties") or {}
    when = envelope.get("time")
    now = when if isinstance(when, datetime) else datetime.fromisoformat(str(when).replace("Z", "+00:00"))
    spec = {"grant": str(props.get("grant")), "reason": str(props.get("reason") or f"rule {props.get('rule')}"),
            "idempotency_key": str(props.get("key"))}
    return grant_credit(session, str(envelope.get("customer_id")), spec, clock=FixedClock(now),
                        created_by=f"rule:{props.get('rule')}", source="rule")


def handle_top_up_requested(session: Session, envelope: Mapping[str, Any]) -> dict[str, Any]:
    """Bus handler for `credits.top_up_requested` (properties pack, key): the automatic
    top-up, bought like a pack under its key (a redelivery buys nothing more)."""
    props = envelope.get("properties") or {}
    when = envelope.get("time")
    now = when if isinstance(when, datetime) else datetime.fromisoformat(str(when).replace("Z", "+00:00"))
    return buy_pack(session, str(envelope.get("customer_id")), str(props.get("pack")), key=str(props.get("key")),
                    clock=FixedClock(now), source="top_up")


def handle_invoice_paid(session: Session, envelope: Mapping[str, Any]) -> bool:
    """Bus handler for `invoice.paid`: a pack's invoice paid credits its grant, once."""
    props = envelope.get("properties") or {}
    invoice_id = props.get("invoice_id") or props.get("id")
    if not isinstance(invoice_id, str):
        return False
    grant = credits.pending_for_invoice(session, invoice_id)
    if grant is None:
        return False
    when = envelope.get("time")
    now = when if isinstance(when, datetime) else datetime.fromisoformat(str(when).replace("Z", "+00:00"))
    return credits.activate(session, grant, now)


def set_top_up(session: Session, customer_id: str, *, enabled: bool, threshold: Any = None, pack: str | None = None,
               clock: Clock) -> dict[str, Any]:
    """The customer's automatic top-up; threshold and pack default to the catalog's `top_up`."""
    customer = load_customer(session, customer_id)
    catalog, _sub = _catalog(session, customer)
    defaults = catalog.credits.top_up if catalog.credits else None
    pack_id = pack or (defaults.pack if defaults else None)
    packs = catalog.credits.packs if catalog.credits else {}
    if pack_id is None:
        raise Conflict("pack", "required: the catalog names no default top-up pack")
    if pack_id not in packs:
        raise NotFound("pack", f"unknown pack {pack_id!r}; the catalog has {', '.join(packs) or 'none'}")
    if threshold is None and defaults is None:
        raise Conflict("threshold", "required: the catalog names no default")
    value = _amount(threshold, "threshold") if threshold is not None else defaults.threshold  # type: ignore[union-attr]
    if value >= packs[pack_id].credit:  # the catalog's pack decides: a conflict with what is published
        raise Conflict("threshold", f"must be below the pack's credit ({packs[pack_id].credit}): "
                                    "one top-up must lift the balance above it")
    customer.has_wallet = True
    row = credits.set_top_up(session, customer.id, enabled=enabled, threshold=value, pack=packs[pack_id].id,
                             pack_credit=packs[pack_id].credit, now=now_of(clock))
    return credits.top_up_to_dict(row)
