from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.catalog import load_catalog
from engine.rules import DurableEngine, References

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def refs() -> References:
    catalogs = [load_catalog(p) for p in sorted((ROOT / "catalogs").glob("*.yaml"))]
    return References.from_catalogs(catalogs, ROOT / "templates")


@pytest.fixture(scope="session")
def durable() -> Iterator[DurableEngine]:
    engine = DurableEngine()
    yield engine
    engine.close()


@pytest.fixture(params=["durable", "python"])
def engine_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)
