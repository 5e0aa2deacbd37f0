from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from engine.cli.errors import BadInput

DOC_SUFFIXES = (".yaml", ".yml", ".json")


def expand(paths: Iterable[str]) -> list[Path]:
    """Files as given, and the YAML/JSON files inside given directories (sorted)."""
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.suffix in DOC_SUFFIXES and f.is_file()))
        elif p.exists():
            out.append(p)
        else:
            raise BadInput(f"{raw}: no such file or directory")
    return out


def no_sqlite_file(url: str) -> bool:
    """A SQLite database URL whose file is not there (opening it would create an empty one)."""
    return url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists()
