"""Where subsystems register their event handlers.

    from engine.events import register_handler

    def on_invoice_paid(session, envelope): ...   # runs inside the consumer's transaction
    register_handler("payments", "invoice.paid", on_invoice_paid)

Patterns follow AMQP topic rules on the dot-separated event type: `*` matches exactly one
word, `#` zero or more (`invoice.*`, `payment.#`, `#`). The same patterns bind the subsystem's
RabbitMQ queue, so the in-process bus and the broker route alike.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from engine.events.envelope import Envelope

SUBSYSTEMS: tuple[str, ...] = ("sales", "payments", "access", "messaging")

Handler = Callable[[Any, Envelope], None]
"""fn(session, envelope): apply the event's effects with `session`; raise to fail it."""



class BatchHandler:
    """A handler with its batch twin: `many(session, envelopes)` applies a batch's events in
    their order, reading what they need in bulk. The bus's fast path (events.apply) hands a
    subsystem's batch to it at once when it is the only handler of every event of the batch;
    a single event is a batch of one, so both ways run the same code."""

    def __init__(self, many: Callable[[Any, Sequence[Envelope]], object], name: str) -> None:
        self.many = many
        self.__name__ = self.__qualname__ = name
        self.__module__ = getattr(many, "__module__", __name__)

    def __call__(self, session: Any, envelope: Envelope) -> None:
        self.many(session, [envelope])


_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,40}$")


@lru_cache(maxsize=65536)
def topic_matches(pattern: str, event_type: str) -> bool:
    """AMQP topic matching: `*` one word, `#` zero or more (memoised: no fast path needed)."""
    return _topic_match_words(pattern.split("."), event_type.split("."))


def _topic_match_words(pat: list[str], words: list[str]) -> bool:
    if not pat:
        return not words
    head, rest = pat[0], pat[1:]
    if head == "#":
        return any(_topic_match_words(rest, words[i:]) for i in range(len(words) + 1))
    if not words:
        return False
    return (head == "*" or head == words[0]) and _topic_match_words(rest, words[1:])


@dataclass(frozen=True)
class Subscription:
    subsystem: str
    pattern: str
    handler: Handler

    @property
    def name(self) -> str:
        fn = self.handler
        return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


class HandlerRegistry:
    """Subscriptions per subsystem. Thread-safe; registering the same function twice for the
    same pattern is a no-op (module reloads in tests)."""

    def __init__(self) -> None:
        self._subs: list[Subscription] = []
        self._lock = threading.Lock()

    def register(self, subsystem: str, pattern: str, fn: Handler) -> None:
        if not _NAME.match(subsystem):
            raise ValueError(f"subsystem name {subsystem!r}: lowercase letters, digits, _ or -")
        if not pattern or any(not w for w in pattern.split(".")):
            raise ValueError(f"event pattern {pattern!r} has an empty word")
        sub = Subscription(subsystem, pattern, fn)
        with self._lock:
            if sub not in self._subs:
                self._subs.append(sub)

    def unregister(self, subsystem: str, pattern: str, fn: Handler) -> None:
        with self._lock:
            sub = Subscription(subsystem, pattern, fn)
            if sub in self._subs:
                self._subs.remove(sub)

    def subsystems(self) -> list[str]:
        """Known subsystems: the four of the architecture plus any other registered name."""
        return list(dict.fromkeys([*SUBSYSTEMS, *(s.subsystem for s in self._subs)]))

    def patterns(self, subsystem: str) -> list[str]:
        return list(dict.fromkeys(s.pattern for s in self._subs if s.subsystem == subsystem))

    def handlers_for(self, subsystem: str, event_type: str) -> list[Handler]:
        return [s.handler for s in self._subs if s.subsystem == subsystem and topic_matches(s.pattern, event_type)]

    def subscribers(self, event_type: str) -> list[str]:
        """The subsystems that handle `event_type`, in registration order."""
        return list(dict.fromkeys(s.subsystem for s in self._subs if topic_matches(s.pattern, event_type)))

    def subscriptions(self) -> list[Subscription]:
        return list(self._subs)

    def clear(self) -> None:
        with self._lock:
            self._subs.clear()


registry = HandlerRegistry()
"""The process-wide registry the subsystems register into at import time."""


def register_handler(subsystem: str, pattern: str, fn: Handler) -> Handler:
    """Subscribe `fn(session, envelope)` of `subsystem` to event types matching `pattern`.

    The bus opens the transaction, records the event id as processed by `subsystem`
    (mark_processed) and calls `fn` in it: a redelivered event never reaches `fn` twice,
    and an exception rolls back both the effects and the record. Returns `fn`, so it also
    works as a decorator factory's body.
    """
    registry.register(subsystem, pattern, fn)
    return fn


def handles(subsystem: str, pattern: str) -> Callable[[Handler], Handler]:
    """Decorator form: `@handles("payments", "invoice.finalized")`."""

    def deco(fn: Handler) -> Handler:
        return register_handler(subsystem, pattern, fn)

    return deco
