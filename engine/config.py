"""Settings from the environment (or a `.env` file), all prefixed `BILLING_`."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BILLING_", env_file=".env", extra="ignore")

    database_url: str = "sqlite:///./billing.db"
    # PostgreSQL connections each process keeps, and may open beyond them while busy
    # (engine.store.PoolSize says why these numbers; the README's Configuration).
    database_pool_size: int = 10
    database_max_overflow: int = 20
    # Empty means the in-process bus (the outbox table is its durable queue).
    broker_url: str = ""
    smtp_url: str = ""
    mail_sink_port: int = 8025  # `billing up` without BILLING_SMTP_URL: a local sink writing var/mail/*.eml
    # ISO timestamp: start the engine on a test clock at that instant.
    test_clock: str = ""
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    console_port: int = 8501
    max_body_bytes: int = 1_000_000
    # FastAPI's OpenTelemetry instrumentation (spans, metrics, logs to the configured providers).
    otel: bool = False
    # How stale an access decision may be across API processes (seconds); see the README.
    access_cache_ttl: float = 300.0
    # access.denied events are written together every this many milliseconds (0: each in its
    # check's own transaction). A crash can lose at most this window's denial events.
    access_denial_buffer_ms: int = 50
    # How often a process looks for rulesets published elsewhere (seconds).
    rules_refresh_seconds: float = 2.0
    catalogs_dir: str = "catalogs"
    rules_dir: str = "rules"
    templates_dir: str = "templates"
    require_services: bool = False
    # The payment provider: empty means no automatic collection in this process.
    psp_url: str = ""
    psp_api_key: str = "sk_sandbox_test"
    # No default: a public default would let anyone sign webhooks. `billing up` makes one
    # per run for its in-process sandbox; anything else refuses to start without it.
    psp_webhook_secret: str = ""
    psp_port: int = 8090
    # `sandbox` (the service at psp_url) or `stripe` (Stripe's API through its SDK).
    psp_provider: str = "sandbox"
    stripe_api_key: str = ""
    stripe_webhook_secret: str = ""
    stripe_api_base: str = ""  # empty: Stripe's own API; tests point it at a local stand-in
    # Who customers pay by bank transfer: printed with the invoice's RF reference on the
    # invoice email. No defaults: a deployment sets its own (the demo seed sets demo values).
    seller_name: str = ""
    seller_iban: str = ""
    # Printed on PDF invoices and credit notes with the name and IBAN (docs/customer-page.md).
    # Lines of the address are separated by "\n" or ";".
    seller_address: str = ""
    seller_tax_id: str = ""
    # Product webhook endpoints (engine.webhooks) must be https and public; these allow plain
    # http and private or loopback addresses (tests, a product on the same host). The private
    # one also lets a customer's notification webhooks (engine.messaging) point there.
    webhooks_allow_http: bool = False
    webhooks_allow_private: bool = False
    # Where customers reach this engine's API from outside (the customer page's links in
    # emails). Empty: http://{api_host}:{api_port}, right only for a local run.
    public_url: str = ""
    # The customer page's links are signed with this (comma-separated: the first signs, all
    # verify, for a rotation). Empty: a secret generated once per database and stored in it
    # (table engine_secrets), so every process of a deployment signs alike. No default value.
    portal_secret: str = ""
    # How long a customer-page link in an email stays valid.
    portal_link_days: int = 30
    # The chart of accounts the books are read through (docs/books.md). Empty: the shipped one.
    chart_of_accounts: str = ""


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def shipped_dir(configured: str) -> Path:
    """A configured directory of examples (catalogs, rules, templates): as given when it
    exists, else the one in the checkout, so `billing up` works from any directory."""
    path = Path(configured)
    if path.is_dir() or path.is_absolute():
        return path.resolve()
    return (Path(__file__).resolve().parents[1] / path).resolve()
