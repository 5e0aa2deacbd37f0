"""The README's start command, `billing up`, as a newcomer runs it: one process that migrates,
seeds the demo, serves the API, the sandbox, a mail sink and the console, prints a key and a
`curl` that works, and stops with everything it started when told to."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
BILLING = Path(sys.executable).parent / "billing"

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_billing_up_starts_everything_prints_a_working_curl_and_stops_whole(tmp_path: Path) -> None:
    ports = {name: _free_port() for name in ("API", "CONSOLE", "PSP", "MAIL_SINK")}
    env = {k: v for k, v in os.environ.items() if not k.startswith("BILLING_")}
    env.update({f"BILLING_{name}_PORT": str(port) for name, port in ports.items()})
    env.update(
        BILLING_DATABASE_URL=f"sqlite:///{tmp_path}/billing.db",
        BILLING_CATALOGS_DIR=str(ROOT / "catalogs"),
        BILLING_RULES_DIR=str(ROOT / "rules"),
        BILLING_TEMPLATES_DIR=str(ROOT / "templates"),
    )
    process = subprocess.Popen(
        [str(BILLING), "up"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(process.stdout or ()), daemon=True).start()
    try:
        deadline = time.monotonic() + 240
        while not any("billing-engine is up." in line for line in lines):
            assert process.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "".join(lines)
            time.sleep(0.2)
        time.sleep(1.0)  # the last lines of the banner
        printed = "".join(lines)
        assert "50 customers" in printed

        key = lines[next(i for i, line in enumerate(lines) if "admin API key (shown once" in line) + 1].strip()
        saved = tmp_path / "var" / "admin.key"
        assert saved.read_text().strip() == key
        assert saved.stat().st_mode & 0o777 == 0o600

        api = f"http://127.0.0.1:{ports['API']}"
        deadline = time.monotonic() + 60
        while not _listening(ports["API"]):
            assert time.monotonic() < deadline, printed
            time.sleep(0.2)
        assert httpx.get(f"{api}/health").json()["status"] == "ok"

        # The banner's own example, run as printed.
        start = next(i for i, line in enumerate(lines) if line.strip().startswith("curl "))
        curl = (lines[start].rstrip().removesuffix("\\") + lines[start + 1]).strip()
        answer = subprocess.run(["bash", "-c", curl], cwd=tmp_path, capture_output=True, text=True, timeout=30)
        decision = json.loads(answer.stdout)
        assert decision["feature"] == "api" and decision["allowed"] is True and decision["plan"], decision

        admin = httpx.Client(base_url=api, headers={"Authorization": f"Bearer {key}"})
        last = admin.get("/v1/customers/cus_050").json()  # the demo's 50 customers, subscribed
        assert last["subscriptions"] and last["subscriptions"][0]["plan"]
        assert admin.get("/v1/customers/cus_051").status_code == 404
        # The published promotions reach the seeded invoices: every edu customer on a paid plan
        # is invoiced at half price, as the quote for them says (issue 15, finding 2).
        edu = [c for c in (admin.get(f"/v1/customers/cus_{i:03d}").json() for i in range(1, 51))
               if c["segment"] == "edu" and c["subscriptions"][0]["plan"] != "free"]
        assert edu
        for customer in edu:
            invoices = admin.get(f"/v1/customers/{customer['id']}/invoices").json()["items"]
            assert invoices and all(any(d["source"] == "rule:promotions/edu-50" for d in inv["discounts"])
                                    for inv in invoices), (customer["id"], invoices)
        console = httpx.get(f"http://127.0.0.1:{ports['CONSOLE']}/", timeout=30)
        assert console.status_code == 200
        assert _listening(ports["PSP"]) and _listening(ports["MAIL_SINK"])
    finally:
        # SIGTERM to the main process alone, as `kill` or a supervisor sends it (Ctrl-C in a
        # terminal reaches the whole group): it stops what it started, the console included.
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            raise
    assert process.returncode is not None
    deadline = time.monotonic() + 15
    while any(_listening(port) for port in ports.values()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [name for name, port in ports.items() if _listening(port)]
