"""The `billing` command run in-process, as a user runs it: its exit code, stdout and stderr;
and the migrated database such commands use (BILLING_DATABASE_URL), for the conftest files of
the folders whose tests run them."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from unittest import mock

import pytest

from engine.cli import main
from engine.config import get_settings
from engine.store import Database


def invoke(*argv: str, env: Mapping[str, str], cwd: Path | None = None,
           stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """`billing ARGV` as a shell runs it (the environment `env` alone, the directory `cwd`, the
    input `stdin`), answered like `subprocess.run(..., capture_output=True, text=True)`, but in
    this process: starting a Python and importing the engine for each command cost the suite
    ~2 s a command. The settings are read afresh from `env` and forgotten after."""
    out, err = io.StringIO(), io.StringIO()
    with mock.patch.dict(os.environ, env, clear=True), contextlib.chdir(cwd or Path.cwd()), \
            mock.patch.object(sys, "stdin", io.StringIO(stdin or "")), \
            contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        get_settings.cache_clear()
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse usage errors, and commands that exit
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            if isinstance(exc.code, str):
                print(exc.code, file=sys.stderr)
        finally:
            get_settings.cache_clear()
    return subprocess.CompletedProcess(["billing", *argv], code, out.getvalue(), err.getvalue())


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
