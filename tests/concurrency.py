"""Running the same work on several threads at once, released together by a barrier: how the
tests show that two workers handling one thing at the same moment do it once."""

from __future__ import annotations

import threading
from collections.abc import Callable


def at_once(work: Callable[[], object], threads: int = 2) -> list[BaseException]:
    """`work` on `threads` threads started together; the exceptions they raised (none: [])."""
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait()
            work()
        except BaseException as exc:  # reported to the caller
            errors.append(exc)

    running = [threading.Thread(target=worker) for _ in range(threads)]
    for t in running:
        t.start()
    for t in running:
        t.join()
    return errors
