"""Token packs in the journal (docs/books.md, *Token packs*): a pack of a custom unit (tokens)
is sold like a money pack, its price deferred (`credits:sold:<invoice>`, books/credits.py), but
its credit never pays an invoice: usage burns it (engine/credits/burn.py), so the revenue is
earned as the tokens are burned, not when an invoice is paid.

- Tokens burned: on `credits.consumed` of a pack's grant, entry `credits:burned:<wallet entry>`
  (reference: the grant): Dr `deferred_revenue` / Cr `revenue:credits:usage`, the pack's price
  per token, `round(used after x price / tokens) - round(used before x price / tokens)`,
  half-even to the cent on the cumulative use (books/credits.py's `earned`), so a pack burned
  to the last token has earned exactly what it deferred. The event carries what the grant had
  given before the burn, so the figure does not depend on when the event is handled.
- Tokens expired unused: on `credits.expired` of a token pack, entry `credits:expired:<grant>`
  as for money packs (books/credits.py's `post_expiry`, in the pack invoice's currency):
  Dr `deferred_revenue` / Cr `revenue:credits:one_time` (breakage).
- The revenue report earns each burn's share the day it is burned (rows `credits:burned:<entry>`
  on plan "credits"), so its deferred is what the journal's `deferred_revenue` holds for the pack.
- Promotional tokens (an operator's grant) deferred nothing: burning them posts nothing.

Each entry is posted by the payments consumer in the transaction that marks its event handled,
so a redelivery posts nothing twice."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from engine import credits
from engine.credits.terms import earned
from engine.payments import journal
from engine.payments.books.credits import DEFERRED, booked, earned_rows, post_expiry, sold_in, write_report
from engine.payments.journal import Posting
from engine.payments.service import PaymentService
from engine.store import mark_processed

ZERO = Decimal(0)
USAGE_REVENUE = "revenue:credits:usage"
CONSUMER = "payments.tokens"


def _pack_currency(session: Session, grant_id: str) -> tuple[credits.Grant, str | None]:
    """The grant, and the currency its pack was sold in (None: promotional, nothing deferred)."""
    grant = credits.get_grant(session, grant_id)
    return grant, sold_in(session, grant.invoice_id) if grant.source in credits.PREPAID else None


def post_burn(session: Session, grant_id: str, burned: Decimal, used_before: Decimal, entry_id: int,
              now: datetime) -> bool:
    """`burned` tokens of a grant that had given `used_before`: the pack's share earned. False
    when nothing is (promotional tokens, or a share rounding to nothing this time)."""
    grant, currency = _pack_currency(session, grant_id)
    if currency is None:
        return False
    total = booked(session, grant.invoice_id)
    share = (earned(total, grant.amount, used_before + burned, currency)
             - earned(total, grant.amount, used_before, currency))
    journal.post_entry(session, f"credits:burned:{entry_id}", now, currency, [
        Posting(DEFERRED, debit=share), Posting(USAGE_REVENUE, credit=share)],
        f"{burned} {grant.unit} of a pack burned by usage: revenue earned", grant_id)
    # The report earns it the day it is burned, out of what the sale left waiting (as an
    # expiry's breakage), so its deferred is the journal's deferred_revenue for the pack.
    write_report(session, f"credits:burned:{entry_id}", grant.customer_id, grant.invoice_id, currency,
            earned_rows(now.date(), share))
    return share > ZERO


def _token_event(session: Session, envelope: dict[str, Any], now: datetime) -> dict[str, Any] | None:
    """The event's properties when it is new to this consumer and names a custom-unit grant;
    None otherwise (a redelivery, or a money unit: books/credits.py's)."""
    if not mark_processed(session, CONSUMER, str(envelope["id"]), now):
        return None
    props: dict[str, Any] = envelope.get("properties") or {}
    custom = bool(props.get("grant_id")) and credits.is_custom(str(props.get("unit") or "USD"))
    return props if custom else None


def handle_credits_consumed(session: Session, envelope: dict[str, Any], *, service: PaymentService) -> None:
    """`credits.consumed` (grant_id, unit, amount, used_before, entry_id): usage burned tokens."""
    now = service.now()
    props = _token_event(session, envelope, now)
    if props is None:
        return
    post_burn(session, str(props["grant_id"]), Decimal(str(props["amount"])), Decimal(str(props["used_before"])),
              int(props["entry_id"]), now)


def handle_tokens_expired(session: Session, envelope: dict[str, Any], *, service: PaymentService) -> None:
    """`credits.expired` of a custom unit: a token pack's unused tokens are breakage revenue, in
    the currency the pack was sold in (books/credits.py handles money units)."""
    now = service.now()
    props = _token_event(session, envelope, now)
    if props is None:
        return
    _grant, currency = _pack_currency(session, str(props["grant_id"]))
    if currency is not None:
        post_expiry(session, str(props["grant_id"]), Decimal(str(props.get("amount") or "0")), currency, now)
