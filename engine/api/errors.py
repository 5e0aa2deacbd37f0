"""Domain refusals to problem responses, in one place, by kind (engine.errors): each
subsystem's errors subclass NotFound, Conflict or Invalid, so this module imports none of
them. Quotes (engine.pricing) and documents keep their own families."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from engine import errors
from engine.api.problems import Problem
from engine.documents import DocumentError
from engine.pricing.quoting import QuoteConflict, QuoteError, QuoteNotFound

# Narrowest kind first: a subsystem's not-found or conflict is also of its invalid-input family.
_STATUS: tuple[tuple[type[errors.Refused] | type[QuoteError], int], ...] = (
    (errors.NotFound, 404), (QuoteNotFound, 404),
    (errors.Conflict, 409), (QuoteConflict, 409),
    (errors.Invalid, 422), (QuoteError, 422),
)


def _problem(exc: errors.Refused | QuoteError, prefix: str) -> Problem:
    status = next(code for kind, code in _STATUS if isinstance(exc, kind))
    field = exc.field_named if isinstance(exc, errors.Refused) else exc.field
    return Problem(status, exc.message, prefix + field)


@contextmanager
def domain_errors(prefix: str = "") -> Iterator[None]:
    """Translate what the subsystems raise; `prefix` locates the field in a batch body."""
    try:
        yield
    except (errors.Refused, QuoteError) as exc:
        raise _problem(exc, prefix) from None
    except DocumentError as exc:
        raise Problem(422, str(exc), prefix + "document", problems=[str(p) for p in exc.problems]) from None
