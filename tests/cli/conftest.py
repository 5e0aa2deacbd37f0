"""What the CLI tests share: a migrated SQLite database that `billing` commands run in this
process use (BILLING_DATABASE_URL), the settings cache cleared around it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.cli import main
from engine.config import get_settings
from engine.store import Database


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    url = f"sqlite:///{tmp_path}/operator.db"
    monkeypatch.setenv("BILLING_DATABASE_URL", url)
    get_settings.cache_clear()
    assert main(["migrate"]) == 0
    db = Database(url)
    yield db
    db.dispose()
    get_settings.cache_clear()
