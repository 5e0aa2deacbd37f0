"""Each shape is started once per test session; every journey makes its own customers, runs
in both shapes, and is followed by the ledger check. The shared test clock starts at
harness.START: JOURNEYS_START=<ISO instant> starts it elsewhere (README, *Where the clock stands*)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from tests.conftest import create_pg_database, drop_pg_database
from tests.journeys.harness import Engine, running
from tests.journeys.ledger import Ledger


@pytest.fixture(scope="session")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    tmp = tmp_path_factory.mktemp("embedded")
    with running("embedded", tmp, f"sqlite:///{tmp}/billing.db") as engine:
        yield engine


@pytest.fixture(scope="session")
def multiprocess(tmp_path_factory: pytest.TempPathFactory, pg_server: str, rabbit_url: str) -> Iterator[Engine]:
    tmp = tmp_path_factory.mktemp("multiprocess")
    url = create_pg_database(pg_server)
    prefix = f"journeys-{secrets.token_hex(4)}"
    extra = {"BILLING_BROKER_URL": rabbit_url, "BILLING_BROKER_PREFIX": prefix,
             # A failing handler is tried again soon: a settle waits for it, not for minutes.
             "BILLING_EVENTS_RETRY_DELAYS_MS": "100,300"}
    try:
        with running("multiprocess", tmp, url, extra) as engine:
            yield engine
    finally:
        _delete_queues(rabbit_url, prefix)
        drop_pg_database(pg_server, url)


def _delete_queues(url: str, prefix: str) -> None:
    """The session's queues and exchanges go with it (best effort)."""
    import asyncio

    import aio_pika

    async def go() -> None:
        conn = await aio_pika.connect_robust(url, timeout=5)
        async with conn:
            channel = await conn.channel()
            for sub in ("sales", "payments", "access", "messaging", "automation", "webhooks", "unrouted"):
                for name in (f"{prefix}.{sub}", f"{prefix}.{sub}.dead", f"{prefix}.{sub}.retry.100ms",
                             f"{prefix}.{sub}.retry.300ms", f"{prefix}.unrouted"):
                    try:
                        await channel.queue_delete(name)
                    except Exception:
                        channel = await conn.channel()

    try:
        asyncio.run(go())
    except Exception:
        pass


@pytest.fixture(params=["embedded", pytest.param("multiprocess", marks=[pytest.mark.postgres,
                                                                        pytest.mark.rabbitmq])])
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    """One running shape; after the journey, the ledger check over everything it touched."""
    system: Engine = request.getfixturevalue(request.param)
    ledger = Ledger(system)
    yield system
    ledger.check()
