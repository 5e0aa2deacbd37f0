"""The `billing` command run in-process, as a user runs it: its exit code, stdout and stderr;
and the migrated database such commands use (BILLING_DATABASE_URL), for the conftest files of
the folders whose tests run them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.cli import main
from engine.config import get_settings
from engine.store import Database


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse usage errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    """A migrated SQLite database that in-process `billing` commands use, the settings cache
    cleared around it."""
    url = f"sqlite:///{tmp_path}/billing.db"
    monkeypatch.setenv("BILLING_DATABASE_URL", url)
    get_settings.cache_clear()
    assert main(["migrate"]) == 0
    db = Database(url)
    yield db
    db.dispose()
    get_settings.cache_clear()
