from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable, Iterator

import pytest
from events_support import Harness, build_registry, cleanup_rabbit, create_effects, fast_config

from engine.events import BusConfig
from engine.store import Database


@pytest.fixture
def prefix() -> str:
    """Unique exchange/queue names per test: parallel runs never collide."""
    return f"test-{secrets.token_hex(4)}"


@pytest.fixture
def bus_config(prefix: str) -> BusConfig:
    return fast_config(prefix)


@pytest.fixture
def rabbitmqctl(rabbit_url: str) -> str:
    """The broker's admin CLI, to force-close connections as an outage would."""
    path = shutil.which("rabbitmqctl")
    if path is None:
        message = "rabbitmqctl is not on PATH"
        if os.environ.get("BILLING_REQUIRE_SERVICES") == "1":
            pytest.fail(message + " and BILLING_REQUIRE_SERVICES=1", pytrace=False)
        pytest.skip(message)
    return path


@pytest.fixture
def rabbit_topology(rabbit_url: str, bus_config: BusConfig) -> Iterator[str]:
    """The RabbitMQ URL; deletes this test's queues and exchanges afterwards."""
    yield rabbit_url
    cleanup_rabbit(rabbit_url, bus_config, build_registry())


@pytest.fixture(params=["inprocess", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)])
def bus_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_harness(request: pytest.FixtureRequest, bus_kind: str, bus_config: BusConfig) -> Iterator[object]:
    made: list[Harness] = []
    prepared: set[int] = set()

    def make(db: Database, registry: object = None) -> Harness:
        if id(db) not in prepared:
            create_effects(db)
            prepared.add(id(db))
        url = request.getfixturevalue("rabbit_topology") if bus_kind == "rabbitmq" else None
        h = Harness(bus_kind, db, registry or build_registry(), bus_config, url)  # type: ignore[arg-type]
        made.append(h)
        return h

    yield make
    # Stop the bus threads first: a consumer still running after the topology is deleted
    # would declare it again. Then delete it (again) ourselves.
    for h in made:
        h.stop()
    if bus_kind == "rabbitmq" and made:
        cleanup_rabbit(made[0].url or "", bus_config, build_registry())


@pytest.fixture
def rabbit_harness(rabbit_topology: str, bus_config: BusConfig) -> Iterator[Callable[..., Harness]]:
    """A RabbitMQ harness factory whose threads stop before the topology is deleted."""
    made: list[Harness] = []

    def make(db: Database, config: BusConfig | None = None) -> Harness:
        h = Harness("rabbitmq", db, build_registry(), config or bus_config, rabbit_topology)
        made.append(h)
        return h

    yield make
    for h in made:
        h.stop()
