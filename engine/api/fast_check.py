"""The access check's fast path, served ahead of the framework.

The product asks "may this customer use this feature?" far more often than anything else,
and most answers need nothing but memory: a key seen recently, a customer in the view,
nothing to write now. For those, the framework's layers (error middlewares, exception
handlers, routing, request and response objects) cost more than the decision itself.

This path answers exactly those requests and hands every other one, with the body it read,
to the full application: an unknown key, a batch, a body that does not validate, a
customer to load, a decision with something to write. It has no answers of its own to keep
in step with the route: a request it cannot serve gets the route's answer, byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError
from pydantic_core import to_json
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.access import AccessService
from engine.access.decision import Decision
from engine.api.deps import allows, bearer_token
from engine.api.keys import KeyVerifier

PATH = "/v1/access/check"

Parse = Callable[[bytes], Any]  # the route's body model: one check, or a list of them

_HEADERS = [(b"content-type", b"application/json")]


def decide_inline(access: AccessService, customer_id: str, feature: str, quantity: Any, in_use: Any) -> Decision | None:
    """The decision when it can be made on the event loop, with its side effects; None when
    it needs the threadpool (nothing was done then: the caller runs `access.check`)."""
    decision = access.check_cached(customer_id, feature, quantity, in_use)
    if decision is None and access.loads_inline:
        # SQLite: loading here beats a thread hop. The loop thread is busy serving the view,
        # and a worker thread waits for the GIL at each of the load's queries (~100 ms a
        # load at 6,000 checks/s); a WAL read never waits for a writer.
        access.snapshot(customer_id)
        decision = access.check_cached(customer_id, feature, quantity, in_use)
    return decision


class FastCheck:
    def __init__(self, access: AccessService, keys: KeyVerifier, parse: Parse, max_body_bytes: int) -> None:
        self.access = access
        self.keys = keys
        self.parse = parse
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send, app: ASGIApp) -> None:
        authorization = length = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value
            elif name == b"content-length":
                length = value
        # A body of unknown or excessive length is the body limit's to answer.
        if authorization is None or length is None or not length.isdigit() or int(length) > self.max_body_bytes:
            await app(scope, receive, send)
            return
        received: list[Message] = []
        more = True
        while more:
            message = await receive()
            received.append(message)
            if message["type"] != "http.request":  # the client left: the app reports it
                break
            more = message.get("more_body", False)
        answer = None if more else self._answer(authorization, b"".join(m.get("body", b"") for m in received))
        if answer is None:
            await app(scope, _replay(received, receive), send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [*_HEADERS, (b"content-length", str(len(answer)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": answer})

    def _answer(self, authorization: bytes, body: bytes) -> bytes | None:
        token = bearer_token(authorization.decode("latin-1"))
        who = self.keys.cached(token) if token else None
        if who is None or not allows(who, "product"):
            return None
        try:
            check = self.parse(body)
        except ValidationError:
            return None
        if isinstance(check, list):  # a batch: the route answers it item by item
            return None
        try:
            decision = decide_inline(self.access, check.customer_id, check.feature, check.quantity, check.in_use)
        except Exception:  # an unknown feature, a failed load: the route answers it
            return None
        return None if decision is None else to_json(decision.to_dict())


def _replay(received: list[Message], receive: Receive) -> Receive:
    """`receive` for the app: the messages read already, then the connection's own."""
    pending = list(received)

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    return replay
