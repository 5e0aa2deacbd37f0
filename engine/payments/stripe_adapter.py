"""The adapter for Stripe, on Stripe's official Python SDK (`stripe`), mapped onto our states.

A charge is one PaymentIntent created and confirmed in one call (automatic capture,
off-session: the customer is not there when an invoice is collected) under our attempt's
idempotency key, which also goes into the intent's metadata so `lookup` can find it again.
A method's token is a Stripe PaymentMethod id ("pm_..."), or "cus_...:pm_..." for a method
attached to a Stripe customer.

The customer page's "update payment method" opens Stripe's hosted form: a Checkout Session in
setup mode, which collects the card into a SetupIntent for a Stripe customer made for it (so
the method can be charged off-session later); `finish_setup` reads the SetupIntent back.

Tested here against a local server that answers like Stripe's API, never against Stripe
itself (see docs/payments.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from engine.payments.provider import (
    ChargeOutcome,
    ChargeRequest,
    HostedSetup,
    MethodCheck,
    PaymentState,
    ProviderError,
    ProviderRejected,
    ProviderTimeout,
    RefundOutcome,
    RefundRequest,
    WebhookEvent,
    WebhookRejected,
    is_retryable,
)

if TYPE_CHECKING:
    import stripe


def _sdk() -> Any:
    """The SDK, imported when an adapter is made: a third of a second that processes without
    a Stripe adapter should not pay."""
    import stripe

    return stripe

# PaymentIntent statuses -> ours. Anything else is pending: never count unknown as paid.
_INTENT_STATES: dict[str, PaymentState] = {
    "succeeded": PaymentState.SUCCEEDED,
    "canceled": PaymentState.FAILED,
    "processing": PaymentState.PENDING,
    "requires_action": PaymentState.PENDING,
    "requires_capture": PaymentState.PENDING,
    "requires_confirmation": PaymentState.PENDING,
    # requires_payment_method is a failure only when it carries the error that put it there.
}
_REFUND_STATES: dict[str, PaymentState] = {
    "succeeded": PaymentState.SUCCEEDED,
    "failed": PaymentState.FAILED,
    "canceled": PaymentState.FAILED,
    "pending": PaymentState.PENDING,
    "requires_action": PaymentState.PENDING,
}
# Stripe's decline codes (and error codes) -> ours; anything else is a generic decline, which
# is not retried automatically.
_DECLINE_CODES: dict[str, str] = {
    "insufficient_funds": "insufficient_funds",
    "card_velocity_exceeded": "insufficient_funds",  # over the card's limit: may clear later
    "withdrawal_count_limit_exceeded": "insufficient_funds",
    "processing_error": "processing_error",
    "issuer_not_available": "try_again_later",
    "try_again_later": "try_again_later",
    "reenter_transaction": "try_again_later",
    "generic_decline": "generic_decline",
    "card_declined": "generic_decline",
    "expired_card": "expired_card",
    "incorrect_number": "incorrect_number",
    "invalid_number": "incorrect_number",
    "invalid_account": "incorrect_number",
    "lost_card": "stolen_card",
    "stolen_card": "stolen_card",
    "pickup_card": "stolen_card",
    "do_not_honor": "do_not_honor",
    "fraudulent": "do_not_honor",
    "restricted_card": "do_not_honor",
    "security_violation": "do_not_honor",
    "authentication_required": "authentication_required",  # the customer must confirm (SCA)
}

# Stripe's own minor units where they differ from the default of two decimals
# (stripe.com/docs/currencies): zero-decimal currencies, and three-decimal ones whose last
# digit must be 0. ISK is zero-decimal in ISO 4217 but sent with two decimals.
_ZERO_DECIMAL = frozenset({"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX",
                           "VND", "VUV", "XAF", "XOF", "XPF"})
_THREE_DECIMAL = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})
# Stripe's minor unit per currency: 2 decimals unless listed.
_EXPONENTS = {**dict.fromkeys(_ZERO_DECIMAL, 0), **dict.fromkeys(_THREE_DECIMAL, 3)}

SIGNATURE_HEADER = "stripe-signature"
# Where Stripe Checkout's hosted form lives (the customer page's CSP lets a form redirect there).
STRIPE_HOSTED_FORM = "https://checkout.stripe.com"


def _exponent(currency: str) -> int:
    return _EXPONENTS.get(currency.upper(), 2)


def to_minor(amount: Decimal, currency: str) -> int:
    """The amount in Stripe's minor units. An amount Stripe cannot carry exactly is refused
    before anything is sent (nothing is ever rounded)."""
    exp = _exponent(currency)
    minor = amount.scaleb(exp)
    if minor != minor.to_integral_value() or (currency.upper() in _THREE_DECIMAL and minor % 10):
        raise ProviderRejected("amount_too_precise", f"{amount} {currency} has no exact amount in Stripe's minor units")
    return int(minor)


def from_minor(minor: Any, currency: str) -> Decimal:
    return Decimal(int(minor)).scaleb(-_exponent(currency))


def _stamp(seconds: Any) -> datetime | None:
    return datetime.fromtimestamp(int(seconds), UTC) if seconds else None


def map_intent(intent: Mapping[str, Any], error: Mapping[str, Any] | None = None) -> ChargeOutcome:
    """A PaymentIntent (with the error of the call that declined it, if any) as our outcome."""
    try:
        raw_status = str(intent.get("status") or "")
        failure = error or intent.get("last_payment_error")
        charge = intent.get("latest_charge")
        state = _intent_state(raw_status, failure, charge)
        decline = _decline(failure) if state is PaymentState.FAILED else None
        currency = str(intent["currency"]).upper()
        # an expanded charge knows what was refunded
        refunded = from_minor(charge.get("amount_refunded") or 0, currency) if isinstance(charge, Mapping) \
            else Decimal(0)
        return ChargeOutcome(
            state=state,
            provider_ref=str(intent["id"]) if intent.get("id") else None,
            amount=from_minor(intent["amount"], currency),
            currency=currency,
            raw_status=raw_status,
            decline_code=decline,
            retryable=None if decline is None else is_retryable(decline),
            captured_at=_stamp(intent.get("created")) if state is PaymentState.SUCCEEDED else None,
            idempotency_key=(intent.get("metadata") or {}).get("idempotency_key"),
            refunded_amount=refunded,
            instructions=None,
        )
    except (KeyError, ValueError, TypeError, ArithmeticError) as exc:
        raise ProviderError(f"unusable PaymentIntent from Stripe: {exc!r}") from exc


def _intent_state(raw_status: str, failure: Any, charge: Any) -> PaymentState:
    """Our state of an intent: a declined attempt fails it, a refunded charge refunds it."""
    if raw_status == "requires_payment_method" and failure:
        return PaymentState.FAILED
    state = _INTENT_STATES.get(raw_status, PaymentState.PENDING)
    if state is PaymentState.SUCCEEDED and isinstance(charge, Mapping) and charge.get("refunded"):
        return PaymentState.REFUNDED
    return state


def _decline(failure: Mapping[str, Any] | None) -> str:
    """Our decline code for Stripe's (an unknown one is a generic decline)."""
    found = failure or {}
    return _DECLINE_CODES.get(str(found.get("decline_code") or found.get("code") or ""), "generic_decline")


def map_refund(refund: Mapping[str, Any]) -> RefundOutcome:
    try:
        raw_status = str(refund.get("status") or "")
        currency = str(refund["currency"]).upper()
        intent = refund.get("payment_intent")
        if isinstance(intent, Mapping):
            intent = intent.get("id")
        return RefundOutcome(
            state=_REFUND_STATES.get(raw_status, PaymentState.PENDING),
            provider_ref=str(refund["id"]),
            payment_provider_ref=str(intent) if intent else None,
            amount=from_minor(refund["amount"], currency),
            currency=currency,
            raw_status=raw_status,
            idempotency_key=(refund.get("metadata") or {}).get("idempotency_key"),
        )
    except (KeyError, ValueError, TypeError, ArithmeticError) as exc:
        raise ProviderError(f"unusable Refund from Stripe: {exc!r}") from exc


def _mapping(value: Any) -> Mapping[str, Any]:
    """An expanded object, or nothing (an id string: not expanded)."""
    return value if isinstance(value, Mapping) else {}


def _search_literal(value: str) -> str:
    """A string in Stripe's search query language: quoted, quotes and backslashes escaped."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _try_later(sdk: Any, exc: stripe.StripeError) -> bool:
    """Throttled, Stripe's fault, or the same key still in flight: try again later."""
    return isinstance(exc, sdk.RateLimitError | sdk.APIError) or (exc.http_status or 0) >= 500 \
        or exc.http_status == 409


class StripeAdapter:
    """Stateless: the SDK client holds the key and the HTTP connection pool, nothing more."""

    name = "stripe"

    def __init__(
        self,
        api_key: str,
        *,
        webhook_secret: str,
        api_base: str | None = None,
        timeout: float = 30.0,
        max_network_retries: int = 1,
        webhook_tolerance_seconds: int = 300,
        refund_lookup_window: int = 100,
        name: str = "stripe",
    ) -> None:
        self.name = name
        self.webhook_secret = webhook_secret
        self.webhook_tolerance = webhook_tolerance_seconds
        self.refund_lookup_window = refund_lookup_window
        stripe = _sdk()
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base} if api_base else None,
            # The SDK retries network errors itself; safe, since every POST carries our key.
            max_network_retries=max_network_retries,
            http_client=stripe.HTTPXClient(timeout=timeout, allow_sync_methods=True),
        )

    # --- transport ------------------------------------------------------------------------
    @staticmethod
    def _translate(exc: stripe.StripeError, what: str) -> Exception:
        """An SDK error as ours: unknown outcome (ProviderError/Timeout: look it up later) or
        refused (ProviderRejected: nothing happened there)."""
        stripe = _sdk()
        if isinstance(exc, stripe.APIConnectionError):
            text = str(exc).lower()
            if "timed out" in text or "timeout" in text:
                return ProviderTimeout(f"stripe {what}: timed out")
            return ProviderError(f"stripe {what}: {exc.user_message or exc}")
        if isinstance(exc, stripe.IdempotencyError):
            return ProviderRejected("idempotency_conflict", exc.user_message or str(exc))
        if _try_later(stripe, exc):
            return ProviderError(f"stripe {what}: {exc.http_status} {exc.user_message or exc}")
        code = exc.code or type(exc).__name__
        return ProviderRejected(str(code), exc.user_message or str(exc))

    # --- operations -----------------------------------------------------------------------
    def charge(self, request: ChargeRequest) -> ChargeOutcome:
        if request.method_type != "card":
            raise ProviderRejected("unsupported_method", f"the Stripe adapter charges cards, not {request.method_type}")
        if not request.token:
            raise ProviderRejected("no_payment_method", "no Stripe PaymentMethod id for this card")
        stripe = _sdk()
        customer, _, method = request.token.rpartition(":")
        params: dict[str, Any] = {
            "amount": to_minor(request.amount, request.currency),
            "currency": request.currency.lower(),
            "payment_method": method,
            "confirm": True,
            "off_session": True,
            "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"},
            "metadata": {**request.metadata, "idempotency_key": request.idempotency_key,
                         "customer_id": request.customer_id},
        }
        if customer:
            params["customer"] = customer
        if request.description:
            params["description"] = request.description
        try:
            intent = self._client.v1.payment_intents.create(
                params=params,
                options={"idempotency_key": request.idempotency_key},
            )
        except stripe.CardError as exc:
            # A decline is an answer, not an error: the body carries the declined intent.
            body = exc.json_body if isinstance(exc.json_body, dict) else {}
            err = body.get("error") or {}
            intent_body = err.get("payment_intent")
            if not isinstance(intent_body, Mapping):  # declined before an intent existed
                intent_body = {"amount": params["amount"], "currency": params["currency"],
                               "metadata": params["metadata"]}
            # Whatever status came with it, a card error means this attempt failed.
            return map_intent({**intent_body, "status": "requires_payment_method"}, error=err)
        except stripe.StripeError as exc:
            raise self._translate(exc, "charge") from exc
        return map_intent(intent.to_dict())

    def check_method(self, method_type: str, token: str | None) -> MethodCheck:
        """A card is a Stripe PaymentMethod id ("pm_..." or "cus_...:pm_..."): it must exist."""
        if method_type != "card" or not token:
            raise ProviderRejected("unsupported_method", "the Stripe adapter stores cards by PaymentMethod id")
        stripe = _sdk()
        try:
            found = self._client.v1.payment_methods.retrieve(token.rpartition(":")[2]).to_dict()
        except stripe.StripeError as exc:
            raise self._translate(exc, "payment method") from exc
        card = found.get("card") or {}
        return MethodCheck("card", card.get("last4"), found.get("id"))

    # --- the hosted form (customer page) -------------------------------------------------
    def start_setup(self, customer_id: str, return_url: str) -> dict[str, str]:
        """A Checkout Session in setup mode for a new Stripe customer; Stripe sends the browser
        back to `return_url?setup_session=<session id>` (or without it, when abandoned)."""
        stripe = _sdk()
        mark = {"customer_id": customer_id}
        sep = "&" if "?" in return_url else "?"
        try:
            customer = self._client.v1.customers.create(params={"metadata": mark})
            session = self._client.v1.checkout.sessions.create(params={
                "mode": "setup",
                "customer": customer.id,
                "payment_method_types": ["card"],
                "client_reference_id": customer_id,
                "metadata": mark,
                "setup_intent_data": {"metadata": mark},
                "success_url": f"{return_url}{sep}setup_session={{CHECKOUT_SESSION_ID}}",
                "cancel_url": return_url,
            })
        except stripe.StripeError as exc:
            raise self._translate(exc, "setup") from exc
        return {"id": str(session.id), "url": str(session.url)}

    def finish_setup(self, session_id: str) -> HostedSetup:
        """The session's SetupIntent and card: complete only when Stripe says both are."""
        stripe = _sdk()
        try:
            session = self._client.v1.checkout.sessions.retrieve(
                session_id, params={"expand": ["setup_intent.payment_method"]}).to_dict()
        except stripe.StripeError as exc:
            raise self._translate(exc, "setup") from exc
        intent: Mapping[str, Any] = _mapping(session.get("setup_intent"))
        method: Mapping[str, Any] = _mapping(intent.get("payment_method"))
        done = session.get("status") == "complete" and intent.get("status") == "succeeded" and bool(method.get("id"))
        customer = session.get("customer") or intent.get("customer")
        token = (f"{customer}:{method['id']}" if customer else str(method["id"])) if done else None
        return HostedSetup(id=str(session["id"]), customer_id=str(session.get("client_reference_id") or ""),
                           status="complete" if done else "open", method_type="card", token=token,
                           last4=(method.get("card") or {}).get("last4"))

    def refund(self, request: RefundRequest) -> RefundOutcome:
        params: dict[str, Any] = {
            "payment_intent": request.provider_ref,
            "amount": to_minor(request.amount, request.currency),
            "metadata": {"idempotency_key": request.idempotency_key, "reason": request.reason[:500]},
        }
        stripe = _sdk()
        try:
            refund = self._client.v1.refunds.create(
                params=params,
                options={"idempotency_key": request.idempotency_key},
            )
        except stripe.StripeError as exc:
            raise self._translate(exc, "refund") from exc
        return map_refund(refund.to_dict())

    def lookup(self, idempotency_key: str) -> ChargeOutcome | None:
        """The intent made under our key, found by its metadata with Stripe's search. Search
        can lag writes by up to a minute: a None right after a crash makes collection send
        the charge again under the same key, which Stripe answers with the first result."""
        stripe = _sdk()
        try:
            found = self._client.v1.payment_intents.search(params={
                "query": f"metadata['idempotency_key']:{_search_literal(idempotency_key)}",
                "limit": 1,
                "expand": ["data.latest_charge"],
            })
        except stripe.StripeError as exc:
            raise self._translate(exc, "lookup") from exc
        data = found.to_dict().get("data") or []
        return map_intent(data[0]) if data else None

    def lookup_refund(self, idempotency_key: str) -> RefundOutcome | None:
        """Refunds cannot be searched: the most recent `refund_lookup_window` are listed and
        matched on the key in their metadata."""
        stripe = _sdk()
        try:
            page = self._client.v1.refunds.list(params={"limit": self.refund_lookup_window})
        except stripe.StripeError as exc:
            raise self._translate(exc, "refund lookup") from exc
        for refund in page.to_dict().get("data") or []:
            if (refund.get("metadata") or {}).get("idempotency_key") == idempotency_key:
                return map_refund(refund)
        return None

    # --- webhooks -------------------------------------------------------------------------
    def parse_webhook(self, headers: dict[str, str], body: bytes) -> WebhookEvent:
        """Verified by the SDK (`stripe.Webhook.construct_event`: HMAC-SHA256 of the
        timestamped body, and the timestamp within the tolerance), then mapped."""
        stripe = _sdk()
        lowered = {k.lower(): v for k, v in headers.items()}
        header = lowered.get(SIGNATURE_HEADER)
        if not header:
            raise WebhookRejected("missing Stripe-Signature header")
        try:
            event = stripe.Webhook.construct_event(body, header, self.webhook_secret,
                                                   tolerance=self.webhook_tolerance)
        except stripe.SignatureVerificationError as exc:
            raise WebhookRejected(f"bad signature or stale timestamp: {exc.user_message or exc}") from exc
        except ValueError as exc:
            raise WebhookRejected(f"malformed webhook body: {exc}") from exc
        try:
            plain = event.to_dict()
            obj = plain["data"]["object"]
            kind = obj.get("object")
            created = _stamp(plain["created"]) or datetime.now(UTC)
            if kind == "payment_intent":
                return WebhookEvent(str(plain["id"]), str(plain["type"]), created, payment=map_intent(obj))
            if kind == "refund":
                return WebhookEvent(str(plain["id"]), str(plain["type"]), created, refund=map_refund(obj))
        except (KeyError, TypeError, AttributeError, ProviderError) as exc:
            raise WebhookRejected(f"malformed webhook body: {exc}") from exc
        raise WebhookRejected(f"event type {plain.get('type')!r} is neither a PaymentIntent nor a Refund event")
