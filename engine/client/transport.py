"""One HTTP call with the key, the engine's problem answers as BillingError, and retries where
a retry cannot do a thing twice: a request that never reached the engine (connection refused,
DNS), and, for calls marked `idempotent` (events carry their ids, checks and reads change
nothing the caller counts), a timeout or a 429/502/503/504 answer too."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx

from engine.client.errors import BillingError, EngineUnavailable

# 500 too: the engine logs and answers it for a failure of its own (a database busy), which
# a replay of the same event ids or the same check cannot make worse.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4  # the first call and three retries
    backoff: float = 0.2  # seconds before the first retry; doubled each time
    max_backoff: float = 5.0

    def delay(self, attempt: int) -> float:
        return float(min(self.backoff * (2 ** attempt), self.max_backoff))


class Transport:
    def __init__(self, base_url: str, api_key: str, *, timeout: float = 10.0, retry: RetryPolicy | None = None,
                 http: httpx.Client | None = None) -> None:
        self.retry = retry or RetryPolicy()
        self.http = http or httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout)
        self.headers = {"Authorization": f"Bearer {api_key}"}

    def close(self) -> None:
        self.http.close()

    def call(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None,
             idempotent: bool = False) -> Any:
        """The answer's JSON (None for an empty one)."""
        last: Exception | None = None
        for attempt in range(self.retry.attempts):
            if attempt:
                time.sleep(self.retry.delay(attempt - 1))
            try:
                response = self.http.request(method, path, json=json, params=params, headers=self.headers)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                last = exc  # never sent: any call may go again
                continue
            except httpx.TransportError as exc:
                if not idempotent:
                    raise EngineUnavailable(f"{method} {path}: {exc!r} (not retried: it may have been applied)") \
                        from exc
                last = exc
                continue
            if response.status_code in RETRY_STATUSES and idempotent:
                last = _problem(response)
                continue
            if response.status_code >= 400:
                raise _problem(response)
            return response.json() if response.content else None
        raise EngineUnavailable(f"{method} {path}: no answer after {self.retry.attempts} attempts ({last})") from last


def _problem(response: httpx.Response) -> BillingError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    detail = str(body.get("detail") or response.reason_phrase or "error")
    return BillingError(response.status_code, detail, body.get("field"), body)
