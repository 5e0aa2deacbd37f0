"""Standard Webhooks signatures (the `standardwebhooks` package): `webhook-id`,
`webhook-timestamp` and `webhook-signature`, one `v1,<base64 HMAC-SHA256>` per valid secret."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache

from standardwebhooks.webhooks import Webhook


@lru_cache(maxsize=1024)
def _signer(secret: str) -> Webhook:
    return Webhook(secret)  # decodes the secret once, not per delivery


def headers(msg_id: str, body: bytes, secrets: Sequence[str], timestamp: datetime) -> dict[str, str]:
    """The headers of one delivery. `timestamp` is wall time: receivers check it against their
    own clock (5 minutes' tolerance), whatever clock the engine runs on."""
    signatures = " ".join(_signer(s).sign(msg_id, timestamp, body) for s in secrets)
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signatures,
    }
