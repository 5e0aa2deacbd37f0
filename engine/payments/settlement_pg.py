"""Settlement matching inside PostgreSQL: the parsed lines stream into a temporary table
through one COPY that stays open while the file is parsed (the server loads chunk n while
Python parses chunk n+1), then a single INSERT ... SELECT joins them to the ledger (one hash
of the day's payments) and writes every result row. Only the mismatches come back to Python.

A day's file is 100,000 lines against as many payments. Fetching the ledger into Python,
matching there and copying the results back cost more than twice the parse; here Python does
little beyond the parse and the database does the join it is built for. Measured and
rejected: per-line index lookups, splitting the lines in SQL, per-chunk matching in a worker
thread (each cost the server more than it saved). The rules are those of
`reconcile._match_settlement` (the reference, used on SQLite); a test holds the two equal.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from engine.money import KNOWN_CURRENCIES, minor_units
from engine.payments.models import Payment, ReconciliationResult, Refund
from engine.payments.statements import StatementLine

# Amounts in a mismatch's detail are printed to the currency's minor unit, as Python does.
_MINOR_UNITS = json.dumps({c: minor_units(c) for c in sorted(KNOWN_CURRENCIES)})
_RESULTS = ReconciliationResult.__tablename__
_PAYMENTS = Payment.__tablename__
_REFUNDS = Refund.__tablename__

_LINES = "pay_recon_lines"  # temporary: the file's lines, dropped with the transaction
_CREATE_LINES = f"""
CREATE TEMPORARY TABLE {_LINES} (
    line_no integer NOT NULL, kind text NOT NULL, provider_ref text, payment_reference text,
    currency text NOT NULL, amount numeric NOT NULL, fee numeric, payout_id text
) ON COMMIT DROP
"""

# Each line matched by the provider's reference, else (a charge) by our attempt key; the
# fallbacks are index probes gated per line (a one-time filter), so they run only for the
# lines the first join missed.
_MATCH = f"""
INSERT INTO {_RESULTS}
    (import_id, line_no, status, kind, provider_ref, payment_reference, payment_id,
     expected_amount, actual_amount, expected_currency, actual_currency, fee, payout_id, detail)
SELECT :import_id, line_no, status, kind, provider_ref, payment_reference, led_id,
       CASE WHEN status = 'missing_in_ledger' THEN NULL ELSE expected END,
       amount,
       CASE WHEN status = 'missing_in_ledger' THEN NULL ELSE led_currency END,
       currency, fee, payout_id,
       CASE status
            WHEN 'matched' THEN NULL
            WHEN 'missing_in_ledger' THEN
                 CASE WHEN led_id IS NULL
                      THEN 'no such ' || CASE kind WHEN 'refund' THEN 'refund' ELSE 'payment' END
                           || ' in the ledger'
                      ELSE 'the ledger has it ' || led_status END
            WHEN 'currency_mismatch' THEN 'ledger has ' || led_currency || ', the file ' || currency
            ELSE 'ledger has ' || round(expected, (CAST(:minor_units AS jsonb) ->> led_currency)::integer)::text
                 || ', the file ' || round(amount, (CAST(:minor_units AS jsonb) ->> led_currency)::integer)::text
            END
FROM (
    SELECT m.*,
           CASE WHEN led_id IS NULL
                  OR (kind = 'charge' AND led_status NOT IN ('succeeded', 'refunded'))
                  OR (kind = 'refund' AND led_status <> 'succeeded') THEN 'missing_in_ledger'
                WHEN led_currency <> currency THEN 'currency_mismatch'
                WHEN expected <> amount THEN 'amount_mismatch'
                ELSE 'matched' END AS status
    FROM (
        SELECT l.*,
               COALESCE(p.id, k.id, f.id) AS led_id,
               COALESCE(p.amount, k.amount, -f.amount) AS expected,
               COALESCE(p.currency, k.currency, f.currency) AS led_currency,
               COALESCE(p.status, k.status, f.status) AS led_status
        FROM {_LINES} l
        LEFT JOIN {_PAYMENTS} p  -- one hash of the ledger for the whole file
               ON l.kind = 'charge' AND p.provider = :provider AND p.provider_ref = l.provider_ref
        LEFT JOIN LATERAL (
            SELECT k.id, k.amount, k.currency, k.status FROM {_PAYMENTS} k
            WHERE p.id IS NULL AND l.kind = 'charge' AND l.payment_reference IS NOT NULL
              AND k.provider = :provider AND k.idempotency_key = l.payment_reference
            LIMIT 1  -- keeps it a gated index probe, not a second hash of the ledger
        ) k ON true
        LEFT JOIN LATERAL (
            SELECT f.id, f.amount, f.currency, f.status FROM {_REFUNDS} f
            WHERE l.kind = 'refund' AND f.provider = :provider AND f.provider_ref = l.provider_ref
            LIMIT 1
        ) f ON true
    ) m
) c
"""

# The ledger records of the period that no line of this import named.
_MISSING_AT_PROVIDER = f"""
INSERT INTO {_RESULTS}
    (import_id, line_no, status, kind, provider_ref, payment_reference, payment_id,
     expected_amount, expected_currency, detail)
SELECT :import_id, 0, 'missing_at_provider', 'charge', p.provider_ref, p.idempotency_key, p.id,
       p.amount, p.currency, 'captured in the period, absent from the settlement'
FROM {_PAYMENTS} p
WHERE p.provider = :provider AND p.captured_at >= :start AND p.captured_at < :end
  AND p.status IN ('succeeded', 'refunded')
  AND NOT EXISTS (SELECT 1 FROM {_LINES} l WHERE l.kind = 'charge' AND l.provider_ref = p.provider_ref)
  -- named by its attempt key alone (the fallback): only the few payments left are looked up
  AND NOT EXISTS (SELECT 1 FROM {_RESULTS} r WHERE r.import_id = :import_id AND r.payment_id = p.id
                  AND r.kind = 'charge' AND r.line_no > 0)
UNION ALL
SELECT :import_id, 0, 'missing_at_provider', 'refund', f.provider_ref, f.idempotency_key, f.id,
       -f.amount, f.currency, 'refunded in the period, absent from the settlement'
FROM {_REFUNDS} f
WHERE f.provider = :provider AND f.created_at >= :start AND f.created_at < :end
  AND f.status = 'succeeded'
  AND NOT EXISTS (SELECT 1 FROM {_LINES} l WHERE l.kind = 'refund' AND l.provider_ref = f.provider_ref)
"""

# What is not matched, with the customer for the event: a few rows, by the import's index.
_UNMATCHED = f"""
SELECT r.line_no, r.status, r.kind, r.provider_ref, r.payment_reference, r.payment_id,
       r.expected_amount, r.actual_amount, r.expected_currency, r.actual_currency, r.fee,
       r.payout_id, r.detail, COALESCE(p.customer_id, f.customer_id) AS customer_id
FROM {_RESULTS} r
LEFT JOIN {_PAYMENTS} p ON p.id = r.payment_id
LEFT JOIN {_REFUNDS} f ON f.id = r.payment_id
WHERE r.import_id = :import_id
  AND r.status IN ('missing_in_ledger', 'missing_at_provider', 'amount_mismatch', 'currency_mismatch')
ORDER BY r.line_no = 0, r.line_no, r.id
"""


def copy_text(lines: Sequence[StatementLine]) -> str:
    """The lines as COPY text (NULL is the empty string: the parser never keeps an empty
    reference). Checked as a whole with C-level counts instead of escaping every field; a
    chunk whose references hold a tab, newline, carriage return or backslash is escaped."""
    body = "".join([
        f"{ln.line_no}\t{ln.kind}\t{ln.provider_ref or ''}\t{ln.payment_reference or ''}\t"
        f"{ln.currency}\t{ln.amount}\t{ln.fee}\t{ln.payout_id or ''}\n"
        for ln in lines
    ])
    n = len(lines)
    if "\\" not in body and "\r" not in body and body.count("\n") == n and body.count("\t") == 7 * n:
        return body
    return "".join(
        "\t".join(_escape(v) for v in (str(ln.line_no), ln.kind, ln.provider_ref, ln.payment_reference,
                                       ln.currency, str(ln.amount), str(ln.fee), ln.payout_id)) + "\n"
        for ln in lines
    )


_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _escape(value: str | None) -> str:
    return "" if value is None else value.translate(_ESCAPES)


class SettlementWriter:
    """Takes a settlement's lines as they are parsed (`send`: one COPY stays open, so the
    server loads chunk n while Python parses chunk n+1), then matches and writes them all
    with one statement (`finish`). Use as a context manager around the sends. Writes in the
    session's transaction; the caller rolls back on error."""

    def __init__(self, session: Session, import_id: str, provider: str) -> None:
        self.session, self.import_id, self.provider = session, import_id, provider
        self.lines = 0
        raw = session.connection().connection.driver_connection
        assert raw is not None
        self._raw: Any = raw
        self._cursor: Any = None
        self._copy: Any = None
        self._copy_cm: Any = None

    def __enter__(self) -> SettlementWriter:
        self._cursor = self._raw.cursor()
        self._cursor.execute(f"DROP TABLE IF EXISTS pg_temp.{_LINES}")
        self._cursor.execute(_CREATE_LINES)
        self._copy_cm = self._cursor.copy(f"COPY {_LINES} FROM STDIN WITH (NULL '')")
        self._copy = self._copy_cm.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            self._copy_cm.__exit__(*exc)  # ends the COPY (or aborts it on an error)
        finally:
            self._cursor.close()

    def send(self, lines: Sequence[StatementLine]) -> None:
        if lines:
            self._copy.write(copy_text(lines))
            self.lines += len(lines)

    def finish(self, start: datetime, end: datetime) -> tuple[int, list[dict[str, Any]]]:
        """After the sends: match and write every line, add the period's ledger records no
        line named; return (matched count, the other outcomes as dicts in the shape of
        `reconcile._result`, in file order, then the ledger records)."""
        conn = self.session.connection()
        # Compiling these plans costs more than it saves; the ledger's hash fits in memory.
        conn.exec_driver_sql("SET LOCAL jit = off")
        conn.exec_driver_sql("SET LOCAL work_mem = '64MB'")
        params = {"provider": self.provider, "import_id": self.import_id, "start": start, "end": end}
        conn.execute(text(_MATCH), {**params, "minor_units": _MINOR_UNITS})
        conn.execute(text(_MISSING_AT_PROVIDER), params)
        conn.exec_driver_sql(f"DROP TABLE pg_temp.{_LINES}")
        results = []
        unmatched_lines = 0
        for r in conn.execute(text(_UNMATCHED), {"import_id": self.import_id}).mappings():
            d = dict(r)
            d["import_id"] = self.import_id
            d["_customer"] = d.pop("customer_id")
            results.append(d)
            if d["line_no"]:
                unmatched_lines += 1
        return self.lines - unmatched_lines, results
