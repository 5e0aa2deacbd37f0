"""Starting the console: `run_console` is what `billing up` calls."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import TextIO

APP = Path(__file__).resolve().parents[2] / "ui" / "app.py"


def console_command(port: int, host: str = "127.0.0.1", app: Path = APP) -> list[str]:
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app),
        "--server.headless",
        "true",
        "--server.port",
        str(port),
        "--server.address",
        host,
        "--browser.gatherUsageStats",
        "false",
        # A failing page shows its message, never a stack trace.
        "--client.showErrorDetails",
        "false",
        "--client.toolbarMode",
        "minimal",
    ]


def wait_healthy(url: str, timeout: float = 60.0, process: subprocess.Popen[bytes] | None = None) -> bool:
    """Wait for Streamlit's /_stcore/health to answer ok."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url.rstrip("/") + "/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.3)
    return False


def run_console(
    port: int = 8501,
    *,
    host: str = "127.0.0.1",
    database_url: str | None = None,
    seed_demo: bool = True,
    wait: bool = True,
    out: TextIO | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start the Streamlit console as a child process and print its URL and the demo sign-ins.

    The caller owns the returned process (terminate it on shutdown). With `seed_demo`, the
    demo users are created first in `database_url` (migrated: `billing migrate`)."""
    out = out or sys.stdout
    child_env = dict(os.environ if env is None else env)
    if database_url:
        child_env["BILLING_DATABASE_URL"] = database_url
    url_db = child_env.get("BILLING_DATABASE_URL") or "sqlite:///./billing.db"
    demo: list[tuple[str, str, str]] = []
    if seed_demo:
        from engine.console.demo_users import seed_demo as seed
        from engine.store import Database
        from engine.store.clock import EngineClock
        from engine.store.migrate import require_migrated

        db = Database(url_db)
        try:
            require_migrated(db)
            with db.session() as s:
                demo = seed(s, clock=EngineClock(db, child_env.get("BILLING_TEST_CLOCK", "")))
        finally:
            db.dispose()
    process = subprocess.Popen(console_command(port, host), env=child_env)
    url = f"http://{host}:{port}"
    if wait and not wait_healthy(url, process=process):
        process.terminate()
        raise RuntimeError(f"the console did not start on {url} (see the output above)")
    print(f"console: {url}", file=out)
    for name, role, password in demo:
        print(f"  sign in as {name} / {password} ({role})", file=out)
    out.flush()
    return process
