"""The two shapes of a running billing engine, started as real processes, and the client the
journeys drive them with: HTTP only (httpx), the way a product or an operator does.

- embedded: `billing serve --test-clock` (SQLite file, in-process bus, workers and scheduler
  inside), the sandbox provider (`billing psp-sandbox`) and an aiosmtpd server.
- multi-process: `billing serve --no-workers`, `billing worker --subsystem all`,
  `billing scheduler`, the sandbox provider and the aiosmtpd server, on PostgreSQL + RabbitMQ,
  sharing one stored test clock.

Setup goes through the operator's doors too: `billing migrate`, `billing publish`,
`billing apikey create`; a journey's own commands (`Engine.billing`: publish, reconcile) run
the CLI's entry point in the test process with the engine's environment.
"""

from __future__ import annotations

import email
import email.policy
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from email.message import Message
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
BILLING = str(Path(sys.executable).with_name("billing"))
# Where the shared test clock starts (tests/journeys/README.md, *Where the clock stands*):
# JOURNEYS_START moves it, to run the journeys inside a promotion's window or at a month's end.
START = os.environ.get("JOURNEYS_START") or "2026-01-01T00:00:00Z"
PSP_KEY = "sk_journeys"
PSP_SECRET = "whsec_journeys"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Processes:
    """The OS processes of one shape; stopped together (SIGTERM, then SIGKILL)."""

    logs: Path
    running: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        out = (self.logs / f"{name}.log").open("wb")
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        self.running.append((name, proc))
        return proc

    def check(self) -> None:
        for name, proc in self.running:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}: {self.tail(name)}")

    def tail(self, name: str, chars: int = 3000) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def stop(self) -> None:
        for _, proc in reversed(self.running):
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + 5
        for _, proc in reversed(self.running):
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def wait_http(url: str, procs: Processes, timeout: float = 240) -> None:
    # Generous: on a loaded 2-core machine five Python processes take minutes to import.
    deadline = time.monotonic() + timeout
    while True:
        procs.check()
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer within {timeout} s")
        time.sleep(0.1)


@dataclass
class Engine:
    """One running shape, seen from outside: its API, the sandbox provider, the mailbox."""

    shape: str
    url: str
    psp_url: str
    mail_dir: Path
    database_url: str
    admin: httpx.Client
    product: httpx.Client
    procs: Processes
    env: dict[str, str]
    # Every customer the journeys made, in order (the ledger checks each journey's own).
    created: list[str] = field(default_factory=list)

    # -- the operator's command line -----------------------------------------------------
    def billing(self, *argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """`billing ARGV` against this engine, as an operator runs it (in this process: see
        tests/cli/runner.invoke), with `env` added to the engine's environment."""
        from tests.cli.runner import invoke

        return invoke(*argv, env={**self.env, **(env or {})}, cwd=ROOT)

    def publish(self, path: Path) -> None:
        """`billing publish PATH`, which must succeed."""
        done = self.billing("publish", str(path))
        assert done.returncode == 0, done.stderr

    # -- HTTP ---------------------------------------------------------------------------
    def post(self, path: str, body: Any = None, status: int | tuple[int, ...] = (200, 201)) -> Any:
        r = self.admin.post(path, json=body if body is not None else {})
        wanted = (status,) if isinstance(status, int) else status
        assert r.status_code in wanted, f"POST {path}: {r.status_code} {r.text}"
        return r.json() if r.content else None

    def get(self, path: str, **params: Any) -> Any:
        r = self.admin.get(path, params=params)
        assert r.status_code == 200, f"GET {path}: {r.status_code} {r.text}"
        return r.json()

    # -- the product's calls ----------------------------------------------------------------
    def customer(self, name: str, **extra: Any) -> str:
        """A customer of this journey only (unique id and address)."""
        cid = f"cus_{name}_{secrets.token_hex(3)}"
        self.post("/v1/customers", {"id": cid, "email": f"{cid}@example.com", "name": name, "country": "DE",
                                    **extra}, status=201)
        self.created.append(cid)
        return cid

    def subscribe(self, customer: str, plan: str, **extra: Any) -> dict[str, Any]:
        body = {"customer_id": customer, "plan": plan, "trial_days": 0, **extra}
        return self.post("/v1/subscriptions", body, status=201)  # type: ignore[no-any-return]

    def usage(self, customer: str, n: int, *, event: str = "api.request", at: str | None = None,
              properties: dict[str, Any] | None = None) -> None:
        when = at or self.now()
        tag = secrets.token_hex(3)
        body = [{"id": f"evt_{customer}_{tag}_{i}", "type": event, "customer_id": customer, "time": when,
                 "properties": properties or {}} for i in range(n)]
        r = self.product.post("/v1/events", json=body)
        assert r.status_code == 202, r.text

    def check(self, customer: str, feature: str, quantity: int = 1) -> dict[str, Any]:
        r = self.product.post("/v1/access/check", json={"customer_id": customer, "feature": feature,
                                                        "quantity": quantity})
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    def quote(self, **body: Any) -> dict[str, Any]:
        r = self.product.post("/v1/quotes", json=body)
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    # -- the operator's calls -----------------------------------------------------------------
    def advance(self, by: str) -> dict[str, Any]:
        """Move the shared test clock; returns when the work due on the way is done."""
        return self.post("/v1/clock/advance", {"by": by})  # type: ignore[no-any-return]

    def settle(self) -> dict[str, Any]:
        """An advance to the present: returns when what is due now is done and delivered."""
        return self.post("/v1/clock/advance", {"to": self.now()})  # type: ignore[no-any-return]

    def now(self) -> str:
        return str(self.get("/health")["time"])

    def invoices(self, customer: str) -> list[dict[str, Any]]:
        listed = self.get(f"/v1/customers/{customer}/invoices", per_page=500)["items"]
        return [self.get(f"/v1/invoices/{i['id']}") for i in sorted(listed, key=lambda i: i["number"])]

    def subscriptions(self, customer: str) -> list[dict[str, Any]]:
        return list(self.get(f"/v1/customers/{customer}")["subscriptions"])

    def notifications(self, customer: str) -> list[dict[str, Any]]:
        return list(self.get(f"/v1/customers/{customer}/notifications", limit=500)["items"])

    # -- the provider and the mailbox ------------------------------------------------------
    def provider(self) -> dict[str, Any]:
        r = httpx.get(f"{self.psp_url}/v1/sandbox/payments", headers={"Authorization": f"Bearer {PSP_KEY}"},
                      timeout=30)
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    def charges(self, customer: str) -> list[dict[str, Any]]:
        return [p for p in self.provider()["payments"] if p.get("customer") == customer]

    def mails(self, to: str | None = None) -> list[Message]:
        out = []
        for path in sorted(self.mail_dir.glob("*.eml")):
            msg = email.message_from_bytes(path.read_bytes())
            if to is None or to in str(msg.get("To", "")):
                out.append(msg)
        return out

    def texts(self, to: str) -> list[str]:
        """The plain-text bodies, decoded (transfer encodings aside), as the customer reads them."""
        return [m.get_body(("plain",)).get_content()  # type: ignore[union-attr]
                for m in (email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
                          for p in sorted(self.mail_dir.glob("*.eml")))
                if to in str(m.get("To", ""))]

    def subjects(self, to: str) -> list[str]:
        return [str(m.get("Subject", "")) for m in self.mails(to)]


def money(value: Any) -> Decimal:
    return Decimal(str(value))


def redeliver(engine: Engine, customer: str, types: tuple[str, ...]) -> int:
    """Deliver again every event of `types` about `customer`, as a broker does after a lost
    acknowledgement: their outbox rows are marked unsent (the one write a journey makes outside
    the engine's doors), then the clock settles, so the relay sends them and every consumer
    meets them a second time. Returns how many; at least one, or the test proves nothing."""
    import sqlalchemy as sa

    url = engine.database_url.replace("postgresql://", "postgresql+psycopg://", 1)
    db = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with db.begin() as conn:
            done = conn.execute(sa.text("UPDATE outbox_events SET published_at = NULL WHERE customer_id = :c AND type IN :t")
                                .bindparams(sa.bindparam("t", expanding=True)), {"c": customer, "t": list(types)})
    finally:
        db.dispose()
    assert done.rowcount > 0, f"no {types} event of {customer} to deliver again"
    engine.settle()
    return int(done.rowcount)


# The PostgreSQL pool of a test system's processes (engine.store.PoolSize): 2 kept, 8 more while
# busy (a worker's subscribers after an advance); each process's hard cap is 10.
TEST_POOL = {"BILLING_DATABASE_POOL_SIZE": "2", "BILLING_DATABASE_MAX_OVERFLOW": "8"}

SELLER_NAME = "Journeys Ltd"
SELLER_IBAN = "CH9300762011623852957"  # the ISO 13616 example IBAN


def base_env(tmp: Path, database_url: str) -> tuple[dict[str, str], dict[str, int]]:
    ports = {"api": free_port(), "psp": free_port(), "smtp": free_port()}
    env = {k: v for k, v in os.environ.items() if not k.startswith("BILLING_")}
    env.update({
        "BILLING_DATABASE_URL": database_url,
        "BILLING_TEST_CLOCK": START,
        "BILLING_PSP_URL": f"http://127.0.0.1:{ports['psp']}",
        "BILLING_PSP_API_KEY": PSP_KEY,
        "BILLING_PSP_WEBHOOK_SECRET": PSP_SECRET,
        "BILLING_SMTP_URL": f"smtp://127.0.0.1:{ports['smtp']}?from=billing@example.com&timeout=5",
        "BILLING_API_HOST": "127.0.0.1",
        "BILLING_API_PORT": str(ports["api"]),
        "BILLING_RULES_REFRESH_SECONDS": "1",
        # A test system's processes keep 2 PostgreSQL connections each, not production's 10: the
        # suite's runs (and other runs on the same server) share its max_connections (100).
        **TEST_POOL,
        # Denials written in the check's own transaction: the upsell journey sees them at once.
        "BILLING_ACCESS_DENIAL_BUFFER_MS": "0",
        # Who bank-transfer customers pay: printed with the RF reference on their invoice emails.
        "BILLING_SELLER_NAME": SELLER_NAME,
        "BILLING_SELLER_IBAN": SELLER_IBAN,
        # The product's webhook receiver is the test's own plain-http server on loopback.
        "BILLING_WEBHOOKS_ALLOW_HTTP": "true",
        "BILLING_WEBHOOKS_ALLOW_PRIVATE": "true",
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
    })
    return env, ports


SETUP = """
import sys
from engine.cli import main
for argv in (["migrate"], ["publish", "catalogs/saas.yaml", "rules/", "--comment", "journeys"],
             ["apikey", "create", "--scope", "admin"], ["apikey", "create", "--scope", "product"]):
    if main(argv) != 0:
        sys.exit(f"billing {' '.join(argv)} failed")
"""


def prepare(env: dict[str, str]) -> tuple[str, str]:
    """Migrate, publish the shipped catalog and rulesets, and create the keys: the operator's
    first steps, through the CLI's entry point (`billing migrate`, `billing publish catalogs/saas.yaml
    rules/`, `billing apikey create` twice), in one interpreter to start Python once."""
    done = subprocess.run([sys.executable, "-c", SETUP], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"setup failed: {done.stdout[-1000:]} {done.stderr[-2000:]}")
    keys = [line for line in done.stdout.splitlines() if line.startswith("bk_")]
    admin, product = keys[-2:]
    return admin, product


@contextmanager
def running(shape: str, tmp: Path, database_url: str, extra_env: dict[str, str] | None = None) -> Iterator[Engine]:
    env, ports = base_env(tmp, database_url)
    env.update(extra_env or {})
    logs = tmp / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    procs = Processes(logs)
    api = f"http://127.0.0.1:{ports['api']}"
    psp = f"http://127.0.0.1:{ports['psp']}"
    mail_dir = tmp / "mail"
    try:
        admin_key, product_key = prepare(env)
        procs.start("smtp", [sys.executable, "-m", "tests.journeys.smtp_sink", str(ports["smtp"]), str(mail_dir)], env)
        procs.start("psp", [BILLING, "psp-sandbox", "--port", str(ports["psp"]),
                            "--webhook-url", f"{api}/webhooks/psp/sandbox"], env)
        if shape == "embedded":
            procs.start("api", [BILLING, "serve", "--port", str(ports["api"]), "--test-clock", START], env)
        else:
            procs.start("api", [BILLING, "serve", "--no-workers", "--port", str(ports["api"]),
                                "--test-clock", START], env)
            procs.start("worker", [BILLING, "worker", "--subsystem", "all"], env)
            procs.start("scheduler", [BILLING, "scheduler"], env)
        wait_http(f"{psp}/health", procs)
        wait_http(f"{api}/health", procs)
        with httpx.Client(base_url=api, headers={"Authorization": f"Bearer {admin_key}"}, timeout=120) as a, \
                httpx.Client(base_url=api, headers={"Authorization": f"Bearer {product_key}"}, timeout=60) as p:
            yield Engine(shape, api, psp, mail_dir, database_url, a, p, procs, env)
    finally:
        procs.stop()
