"""API keys: `bk_<id>_<secret>`. The secret has 256 bits of entropy, so a plain SHA-256 is the
right hash (a slow password hash buys nothing against brute force here and costs every call)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.api.models import ApiKey
from engine.store import Database

# finance: the books (journal, trial balance, revenue recognition, month close) and nothing else.
SCOPES = ("product", "admin", "finance")


@dataclass(frozen=True)
class Principal:
    key_id: str
    scope: str


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(session: Session, scope: str, *, now: datetime, name: str = "") -> tuple[str, str]:
    """Create a key; returns (key id, the full key). The full key is never stored."""
    if scope not in SCOPES:
        raise ValueError(f"scope: one of {', '.join(SCOPES)}")
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    session.add(ApiKey(id=key_id, secret_hash=_hash(secret), scope=scope, name=name, created_at=now))
    return key_id, f"bk_{key_id}_{secret}"


def revoke_key(session: Session, key_id: str, *, now: datetime) -> bool:
    row = session.get(ApiKey, key_id)
    if row is None or row.revoked_at is not None:
        return False
    row.revoked_at = now
    return True


def list_keys(session: Session) -> list[dict[str, object]]:
    rows = session.scalars(select(ApiKey).order_by(ApiKey.created_at))
    return [
        {
            "id": r.id,
            "scope": r.scope,
            "name": r.name,
            "created_at": r.created_at.isoformat(),
            "revoked": r.revoked_at is not None,
        }
        for r in rows
    ]


class KeyVerifier:
    """Checks bearer keys against the store, remembering good ones for `ttl` seconds so a hot
    endpoint does not read the database per call. A revocation in this process applies at
    once; in another process within `ttl`."""

    def __init__(self, db: Database, ttl: float = 5.0) -> None:
        self.db = db
        self.ttl = ttl
        self._cache: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    def cached(self, token: str) -> Principal | None:
        """The principal of a key verified less than `ttl` ago, without touching the store."""
        with self._lock:
            hit = self._cache.get(token)
            if hit is not None and time.monotonic() - hit[0] < self.ttl:
                return hit[1]
        return None

    def verify(self, token: str) -> Principal | None:
        now = time.monotonic()
        hit = self.cached(token)
        if hit is not None:
            return hit
        parts = token.split("_", 2)
        if len(parts) != 3 or parts[0] != "bk":
            return None
        _, key_id, secret = parts
        with self.db.read_session() as session:
            row = session.get(ApiKey, key_id)
            if row is None or row.revoked_at is not None:
                return None
            if not hmac.compare_digest(row.secret_hash, _hash(secret)):
                return None
            principal = Principal(row.id, row.scope)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[token] = (now, principal)
        return principal

    def forget(self, key_id: str | None = None) -> None:
        with self._lock:
            if key_id is None:
                self._cache.clear()
            else:
                for token in [t for t, (_, p) in self._cache.items() if p.key_id == key_id]:
                    del self._cache[token]
