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


@contextmanager
def domain_errors(prefix: str = "") -> Iterator[None]:
    """Translate what the subsystems raise; `prefix` locates the field in a batch body."""
    try:
        yield
    except NotFound as exc:
        raise Problem(404, exc.message, prefix + exc.field) from None
    except UnknownGrant as exc:
        raise Problem(404, exc.message, prefix + exc.field) from None
    except CreditsConflict as exc:
        raise Problem(409, exc.message, prefix + exc.field) from None
    except CreditsError as exc:
        raise Problem(422, exc.message, prefix + exc.field) from None
    except Conflict as exc:
        raise Problem(409, exc.message, prefix + exc.field) from None
    except SalesError as exc:
        raise Problem(422, exc.message, prefix + exc.field) from None
    except QuoteNotFound as exc:
        raise Problem(404, exc.message, prefix + exc.field) from None
    except QuoteConflict as exc:
        raise Problem(409, exc.message, prefix + exc.field) from None
    except QuoteError as exc:
        raise Problem(422, exc.message, prefix + exc.field) from None
    except PaymentNotFound as exc:
        raise Problem(404, exc.message, prefix + exc.field) from None
    except RefundRejected as exc:
        raise Problem(422, str(exc), prefix + (exc.field or "amount")) from None
    except PaymentError as exc:
        raise Problem(422, exc.message, prefix + (exc.field or "payment_method")) from None
    except UnknownFeature as exc:
        raise Problem(404, str(exc), prefix + "feature") from None
    except DocumentError as exc:
        raise Problem(422, str(exc), prefix + "document", problems=[str(p) for p in exc.problems]) from None
