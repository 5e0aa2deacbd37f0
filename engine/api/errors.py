"""Domain errors to problem responses, in one place."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from engine.access import UnknownFeature
from engine.api.problems import Problem
from engine.credits import CreditsConflict, CreditsError, UnknownGrant
from engine.documents import DocumentError
from engine.payments import PaymentError, PaymentNotFound, RefundRejected
from engine.pricing.quoting import QuoteConflict, QuoteError, QuoteNotFound
from engine.sales import Conflict, NotFound, SalesError

# Sales, credits, quotes and payments each have their own error family (none derives from
# another's), with not-found and conflict subclasses: grouped here by the status they answer.
_NOT_FOUND = (NotFound, UnknownGrant, QuoteNotFound, PaymentNotFound)
_CONFLICT = (CreditsConflict, Conflict, QuoteConflict)
_INVALID = (CreditsError, SalesError, QuoteError)


@contextmanager
def domain_errors(prefix: str = "") -> Iterator[None]:
    """Translate what the subsystems raise; `prefix` locates the field in a batch body."""
    try:
        yield
    except _NOT_FOUND as exc:
        raise Problem(404, exc.message, prefix + exc.field) from None
    except _CONFLICT as exc:
        raise Problem(409, exc.message, prefix + exc.field) from None
    except _INVALID as exc:
        raise Problem(422, exc.message, prefix + exc.field) from None
    except RefundRejected as exc:
        raise Problem(422, str(exc), prefix + (exc.field or "amount")) from None
    except PaymentError as exc:
        raise Problem(422, exc.message, prefix + (exc.field or "payment_method")) from None
    except UnknownFeature as exc:
        raise Problem(404, str(exc), prefix + "feature") from None
    except DocumentError as exc:
        raise Problem(422, str(exc), prefix + "document", problems=[str(p) for p in exc.problems]) from None
