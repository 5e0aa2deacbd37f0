"""A cohort from an uploaded CSV file: the header read against the catalogs' metrics, the
lines turned into records (engine.simulation.records), every problem named by its file
line. Moved from engine.simulation.cohort."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from typing import Any

from engine.catalog.model import Catalog
from engine.simulation.cohort import MAX_CUSTOMERS, Cohort
from engine.simulation.errors import CohortError
from engine.simulation.records import cohort_from_records

CSV_FIXED = ("customer_id", "plan", "quantity", "segment", "country")
CSV_REQUIRED = ("customer_id", "plan")


def cohort_from_csv(text: str | bytes, catalogs: Sequence[Catalog] = (), *, max_rows: int = MAX_CUSTOMERS) -> Cohort:
    """A cohort from CSV: columns customer_id, plan, and optionally quantity, segment, country;
    every other column is a metric's monthly usage (named as in the catalog, or usage.METRIC)."""
    reader = csv.reader(io.StringIO(_csv_text(text)))
    try:
        header = [h.strip() for h in next(reader)]
    except csv.Error as exc:
        raise CohortError([f"line 1: not CSV ({exc})"]) from None
    rows = _csv_rows(reader, header, _csv_columns(header, catalogs), max_rows)
    try:
        return cohort_from_records(rows, catalogs=catalogs, source="csv")
    except CohortError as exc:
        raise CohortError([_file_line(p, rows) for p in exc.problems]) from None


def _csv_text(text: str | bytes) -> str:
    """The file as text, refused when it is not UTF-8 or is empty."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise CohortError(["the file is not UTF-8 text"]) from None
    text = text.lstrip("\ufeff")
    if not text.strip():
        raise CohortError(["the file is empty: expected a header line with customer_id, plan, ..."])
    return text


def _csv_columns(header: list[str], catalogs: Sequence[Catalog]) -> list[tuple[int, str, str | None]]:
    """(index, name, metric or None for a fixed column) per column; refused for a missing
    required column or a metric no catalog has."""
    problems = [f"missing column {c!r} (the header has: {', '.join(header)})" for c in CSV_REQUIRED if c not in header]
    metrics = {m for c in catalogs for m in c.metrics}
    columns: list[tuple[int, str, str | None]] = []
    for i, name in enumerate(header):
        if name in CSV_FIXED:
            columns.append((i, name, None))
            continue
        metric = name[6:] if name.startswith("usage.") else name
        if not metric:
            problems.append(f"column {i + 1} has no name")
        elif catalogs and metric not in metrics:
            problems.append(
                f"column {name!r} is not a metric of the catalogs (known: {', '.join(sorted(metrics)) or 'none'})"
            )
        else:
            columns.append((i, name, metric))
    if problems:
        raise CohortError(problems)
    return columns


def _csv_rows(reader: Iterator[list[str]], header: list[str], columns: list[tuple[int, str, str | None]],
              max_rows: int) -> list[dict[str, Any]]:
    """The records of the data lines (blank lines skipped), each with its file line as `_line`."""
    rows: list[dict[str, Any]] = []
    row_problems: list[str] = []
    try:
        for line_no, values in enumerate(reader, 2):
            if not any(v.strip() for v in values):
                continue
            if len(values) != len(header):
                row_problems.append(f"line {line_no}: {len(values)} values for {len(header)} columns")
                continue
            row: dict[str, Any] = {"usage": {}, "_line": line_no}
            for i, name, col_metric in columns:
                if col_metric is None:
                    row[name] = values[i]
                else:
                    row["usage"][col_metric] = values[i]
            rows.append(row)
            if len(rows) > max_rows:
                raise CohortError([f"more than {max_rows:,} rows: split the file"])
    except csv.Error as exc:
        raise CohortError([f"not CSV ({exc})"]) from None
    if row_problems:
        raise CohortError(row_problems[:50])
    if not rows:
        raise CohortError(["the file has a header but no customers: nothing to simulate"])
    return rows


def _file_line(problem: str, rows: list[dict[str, Any]]) -> str:
    """A record's problem ("row 3: ...") named by its file line instead."""
    if problem.startswith("row "):
        n, _, rest = problem[4:].partition(":")
        if n.isdigit():
            return f"line {rows[int(n) - 1]['_line']}:{rest}"
    return problem
