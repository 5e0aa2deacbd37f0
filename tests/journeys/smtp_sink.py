"""An SMTP server for the journeys, as its own process: `python -m tests.journeys.smtp_sink
PORT DIR` keeps every message it accepts as DIR/<n>.eml (aiosmtpd), until SIGTERM."""

from __future__ import annotations

import itertools
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


class Keep:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.numbers = itertools.count(1)
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # aiosmtpd calls it so
        with self.lock:
            n = next(self.numbers)
        tmp = self.folder / f".{n}.tmp"
        tmp.write_bytes(bytes(envelope.original_content or envelope.content))
        tmp.rename(self.folder / f"{n:06d}.eml")  # whole files only: readers never see half a message
        return "250 OK"


def main() -> None:
    port, folder = int(sys.argv[1]), Path(sys.argv[2])
    folder.mkdir(parents=True, exist_ok=True)
    controller = Controller(Keep(folder), hostname="127.0.0.1", port=port)
    controller.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print("smtp sink ready", flush=True)
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
