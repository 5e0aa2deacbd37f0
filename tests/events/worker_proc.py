"""A worker process for the cross-process tests: `run_worker` with the test handlers.

--kill-after-commit ID: SIGKILL this process right after the transaction that applied
event ID committed, before its message is acked.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parents[1]), str(HERE)]

from events_support import build_registry, fast_config  # noqa: E402

from engine.config import Settings  # noqa: E402
from engine.events import install_signal_handlers, run_worker  # noqa: E402
from engine.events.apply import Outcome  # noqa: E402
from engine.store import Database  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--broker", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--subsystem", default="all")
    parser.add_argument("--kill-after-commit", default="")
    parser.add_argument("--with-relay", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format=f"worker[{os.getpid()}] %(message)s")

    def after_commit(subsystem: str, outcomes: list[Outcome]) -> None:
        if args.kill_after_commit and any(
            o.envelope.id == args.kill_after_commit and o.status == "applied" for o in outcomes
        ):
            os.kill(os.getpid(), signal.SIGKILL)

    stop = threading.Event()
    install_signal_handlers(stop)
    db = Database(args.db)
    settings = Settings(database_url=args.db, broker_url=args.broker)
    print("ready", flush=True)
    run_worker(
        args.subsystem,
        build_registry(),
        settings,
        stop,
        db=db,
        config=fast_config(args.prefix),
        after_commit=after_commit,
        with_relay=args.with_relay,
    )
    db.dispose()


if __name__ == "__main__":
    main()
