"""An in-memory view of customers' access snapshots, invalidated by the events that change them.

Within one process a change is seen at once: the writes that change a decision (usage
ingested, plan changed, payment, dunning state, rules published) invalidate the entry in
the same process. Changes made by other processes arrive through the outbox follower
(`AccessService.follow_changes`) within half a second. New usage marks only the entry's
usage stale, so the next read reloads just that. `ttl` is the safety net for changes made
around the engine (see the README).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from engine.access.decision import Snapshot


class AccessView:
    def __init__(
        self, ttl: float = 2.0, max_entries: int = 100_000, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._monotonic = monotonic
        # customer -> (loaded at, snapshot, its usage is stale: new usage came since)
        self._entries: OrderedDict[str, tuple[float, Snapshot, bool]] = OrderedDict()
        # Bumped by every invalidation: a snapshot loaded while its customer was invalidated
        # is returned to its caller but never cached.
        self._versions: dict[str, int] = {}
        self._epoch = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def peek(self, customer_id: str) -> Snapshot | None:
        """The cached snapshot if it is fresh, else None (never loads)."""
        snapshot = self.current(customer_id)
        if snapshot is not None:
            self.hits += 1
        return snapshot

    def get(
        self,
        customer_id: str,
        load: Callable[[], Snapshot],
        reload_usage: Callable[[Snapshot], Snapshot] | None = None,
    ) -> Snapshot:
        """The customer's snapshot: cached, or with only its usage read again when new usage
        is all that changed (`reload_usage`), or loaded whole."""
        now = self._monotonic()
        stale: Snapshot | None = None
        with self._lock:
            entry = self._entries.get(customer_id)
            if entry is not None and now - entry[0] < self.ttl:
                if not entry[2]:
                    self.hits += 1
                    self._entries.move_to_end(customer_id)
                    return entry[1]
                if reload_usage is not None:
                    stale = entry[1]
            seen = (self._epoch, self._versions.get(customer_id, 0))
        self.misses += 1
        if stale is not None and reload_usage is not None:
            snapshot = reload_usage(stale)
            loaded_at = entry[0] if entry is not None else now  # the rest is as old as before
        else:
            snapshot = load()
            loaded_at = now
        with self._lock:
            if seen == (self._epoch, self._versions.get(customer_id, 0)):
                self._entries[customer_id] = (loaded_at, snapshot, False)
                self._entries.move_to_end(customer_id)
                while len(self._entries) > self.max_entries:
                    self._entries.popitem(last=False)
        return snapshot

    def refresh_many(self, customer_ids: Sequence[str], reload_many: Callable[[list[Snapshot]], list[Snapshot]]) -> int:
        """Read again at once the usage of those customers whose cached snapshot has stale
        usage (a usage batch's customers: one ask for their wallets instead of one each);
        the others are left to their next read. A customer invalidated meanwhile is not
        cached. Returns how many were reloaded."""
        now = self._monotonic()
        stale: list[tuple[str, float, Snapshot, tuple[int, int]]] = []
        with self._lock:
            for cid in customer_ids:
                entry = self._entries.get(cid)
                if entry is not None and entry[2] and now - entry[0] < self.ttl:
                    stale.append((cid, entry[0], entry[1], (self._epoch, self._versions.get(cid, 0))))
        if not stale:
            return 0
        self.misses += len(stale)
        fresh = reload_many([s[2] for s in stale])
        with self._lock:
            for (cid, loaded_at, _old, seen), snapshot in zip(stale, fresh, strict=True):
                if seen == (self._epoch, self._versions.get(cid, 0)):
                    self._entries[cid] = (loaded_at, snapshot, False)  # the rest is as old as before
                    self._entries.move_to_end(cid)
        return len(stale)

    def current(self, customer_id: str) -> Snapshot | None:
        """The cached snapshot if it is fresh, else None; not counted as a hit (a writer
        takes it before storing usage, to add that usage to it afterwards)."""
        with self._lock:
            entry = self._entries.get(customer_id)
            if entry is not None and not entry[2] and self._monotonic() - entry[0] < self.ttl:
                return entry[1]
        return None

    def swap(self, customer_id: str, expected: Snapshot, new: Snapshot) -> bool:
        """Replace the entry with `new` if it still holds `expected` (the very object: nothing
        was loaded or invalidated since). A load in flight, which may have read the database
        before the change, is then not cached."""
        with self._lock:
            entry = self._entries.get(customer_id)
            if entry is None or entry[1] is not expected or entry[2]:
                return False
            self._entries[customer_id] = (entry[0], new, False)
            self._bump(customer_id)
            return True

    def invalidate_usage(self, customer_id: str) -> None:
        """New usage: the next read reloads the usage only (a load in flight is not cached)."""
        with self._lock:
            entry = self._entries.get(customer_id)
            if entry is not None:
                self._entries[customer_id] = (entry[0], entry[1], True)
            self._bump(customer_id)

    def invalidate(self, customer_id: str | None) -> None:
        with self._lock:
            if customer_id is None:
                self._epoch += 1
                self._entries.clear()
                self._versions.clear()
            else:
                self._entries.pop(customer_id, None)
                self._bump(customer_id)

    def _bump(self, customer_id: str) -> None:  # with the lock held
        self._versions[customer_id] = self._versions.get(customer_id, 0) + 1
        if len(self._versions) > 4 * self.max_entries:
            self._epoch += 1  # keep the counters bounded; a rare full flush is harmless
            self._versions.clear()
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
