"""Parsers for what providers and banks send us: the sandbox's daily settlement CSV and
ISO 20022 camt.053 bank statements. Both validate the whole file before anything is
recorded; a broken line rejects the file with every problem listed."""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from engine.money import KNOWN_CURRENCIES, quantum
from engine.payments.references import is_valid_creditor_reference, normalise_reference

SETTLEMENT_COLUMNS = (
    "settlement_date",
    "payout_id",
    "type",
    "provider_reference",
    "payment_reference",
    "currency",
    "gross",
    "fee",
    "net",
    "created_at",
)
MAX_ERRORS = 20


class StatementFormatError(ValueError):
    """The file is not what it claims to be; nothing of it was recorded."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


@dataclass(slots=True)
class StatementLine:
    line_no: int
    kind: str  # charge | refund (settlement); credit | debit (bank)
    provider_ref: str | None
    payment_reference: str | None
    currency: str
    amount: Decimal  # signed: refunds and debits are negative
    fee: Decimal
    net: Decimal
    payout_id: str | None
    booked_at: datetime | None
    booked: bool = True  # camt: only booked entries are final


@dataclass
class ParsedStatement:
    kind: str  # settlement_csv | camt053
    source: str  # provider name, or the bank account (IBAN)
    statement_id: str
    period_start: datetime
    period_end: datetime
    sha256: str
    lines: list[StatementLine] = field(default_factory=list)


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), tzinfo=UTC)
    return start, start + timedelta(days=1)


def parse_settlement_csv(data: bytes, *, provider: str = "sandbox", name: str = "settlement.csv") -> ParsedStatement:
    """The sandbox's daily settlement report (columns SETTLEMENT_COLUMNS, one settlement day)."""
    reader = SettlementReader(data, provider=provider, name=name)
    lines: list[StatementLine] = []
    for chunk in reader.chunks():
        lines.extend(chunk)
    return reader.statement(lines)


class SettlementReader:
    """A settlement CSV read in chunks of lines, so a consumer can act on the first lines
    while the rest is parsed. Every line is still validated: `statement()` (or `check()`)
    raises StatementFormatError listing every problem, and a consumer must not keep anything
    of a file whose check fails. The header is checked when the reader is made."""

    def __init__(self, data: bytes, *, provider: str = "sandbox", name: str = "settlement.csv",
                 chunk_size: int = 20_000) -> None:
        self.provider, self.name, self.chunk_size = provider, name, chunk_size
        self.sha256 = hashlib.sha256(data).hexdigest()
        self.errors: list[str] = []
        self.day_text: str | None = None
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise StatementFormatError([f"{name}: not UTF-8 text ({exc})"]) from None
        self._reader = csv.reader(io.StringIO(text, newline=""))
        header = next(self._reader, None)
        if header is None or tuple(h.strip() for h in header) != SETTLEMENT_COLUMNS:
            raise StatementFormatError(
                [f"{name}:1: header must be {','.join(SETTLEMENT_COLUMNS)}, got {','.join(header or [])}"]
            )

    def chunks(self) -> Iterator[list[StatementLine]]:
        """The valid lines, chunk_size at a time; problems go to `errors` (reading stops after
        MAX_ERRORS of them)."""
        name, errors = self.name, self.errors
        lines: list[StatementLine] = []
        day_text: str | None = None
        quanta: dict[str, Decimal] = {}
        ncols = len(SETTLEMENT_COLUMNS)
        append = lines.append
        size = self.chunk_size
        for no, row in enumerate(self._reader, start=2):
            if len(row) != ncols:
                if not row:
                    continue
                errors.append(f"{name}:{no}: expected {ncols} fields, got {len(row)}")
            else:
                sdate, payout, kind, ref, pref, cur, gross_s, fee_s, net_s, created_s = row
                try:
                    if day_text is None:
                        date.fromisoformat(sdate)
                        day_text = self.day_text = sdate
                    elif sdate != day_text:
                        raise ValueError(f"settlement_date {sdate} differs from {day_text}: one day per file")
                    q = quanta.get(cur)
                    if q is None:
                        if cur not in KNOWN_CURRENCIES:
                            raise ValueError(f"currency {cur!r} is not a known ISO 4217 code")
                        q = quanta[cur] = quantum(cur)
                    gross, fee, net = Decimal(gross_s), Decimal(fee_s), Decimal(net_s)
                    if gross.quantize(q) != gross or fee.quantize(q) != fee or net.quantize(q) != net:
                        raise ValueError(f"amounts have more decimals than {cur} allows")
                    if gross - fee != net:
                        raise ValueError(f"gross {gross_s} - fee {fee_s} != net {net_s}")
                    if kind == "charge":
                        if gross <= 0:
                            raise ValueError("a charge has a positive gross")
                    elif kind == "refund":
                        if gross >= 0:
                            raise ValueError("a refund has a negative gross")
                    else:
                        raise ValueError(f"type must be charge or refund, not {kind!r}")
                    if not ref:
                        raise ValueError("provider_reference is empty")
                    booked = datetime.fromisoformat(created_s) if created_s else None
                    if booked is not None and booked.tzinfo is None:
                        raise ValueError("created_at has no timezone")
                except (ValueError, InvalidOperation, ArithmeticError) as exc:
                    msg = str(exc) if not isinstance(exc, InvalidOperation) else "an amount is not a decimal"
                    errors.append(f"{name}:{no}: {msg}")
                else:
                    append(StatementLine(no, kind, ref, pref or None, cur, gross, fee, net, payout or None, booked))
                    if len(lines) >= size:
                        yield lines
                        lines = []
                        append = lines.append
            if len(errors) >= MAX_ERRORS:
                errors.append(f"{name}: stopped after {MAX_ERRORS} errors")
                break
        if lines:
            yield lines

    def check(self) -> str:
        """After reading: the settlement day, or StatementFormatError with every problem."""
        if self.errors:
            raise StatementFormatError(self.errors)
        if self.day_text is None:
            raise StatementFormatError([f"{self.name}: no rows, so no settlement date"])
        return self.day_text

    def statement(self, lines: list[StatementLine]) -> ParsedStatement:
        """The parsed statement, once every chunk was read (empty `lines` for a consumer that
        kept none)."""
        day_text = self.check()
        start, end = _day_bounds(date.fromisoformat(day_text))
        return ParsedStatement(
            kind="settlement_csv",
            source=self.provider,
            statement_id=f"{self.provider}:settlement:{day_text}",
            period_start=start,
            period_end=end,
            sha256=self.sha256,
            lines=lines,
        )


# --- camt.053 --------------------------------------------------------------------------------

_CAMT053_NS = re.compile(r"^urn:iso:std:iso:20022:tech:xsd:camt\.053\.001\.(\d{2})$")
# A reference in free text: contiguous, or printed in groups of four ("RF18 5390 0754 7034").
# Every printed group has four characters but the last, so a short group ends the reference.
_RF_IN_TEXT = re.compile(r"\bRF\d{2}(?:[0-9A-Z]{1,21}\b|(?: [0-9A-Z]{4}\b){0,5}(?: [0-9A-Z]{1,4}\b)?)")


def _find_rf(text: str) -> str | None:
    """A valid ISO 11649 reference inside free text (banks often put it in Ustrd). Only whole
    words or whole groups are tried, longest first, so a neighbouring word is not glued on
    (which would pass the mod-97 check by chance one time in 97)."""
    for match in _RF_IN_TEXT.finditer(text.upper()):
        parts = match.group(0).split(" ")
        for end in range(len(parts), 0, -1):
            cand = "".join(parts[:end])
            if len(cand) > 4 and is_valid_creditor_reference(cand):
                return cand
    return None


def parse_camt053(data: bytes, *, name: str = "statement.xml") -> ParsedStatement:
    """ISO 20022 BankToCustomerStatement (camt.053.001.02 to .13). Parsed with defusedxml:
    no DTDs, no entity expansion, no external references."""
    from xml.etree.ElementTree import Element, ParseError

    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import fromstring

    try:
        root = fromstring(data)
    except (ParseError, DefusedXmlException) as exc:
        raise StatementFormatError([f"{name}: not acceptable XML: {exc}"]) from None
    ns_match = re.match(r"^\{([^}]*)\}Document$", root.tag)
    if not ns_match or not _CAMT053_NS.match(ns_match.group(1)):
        raise StatementFormatError(
            [f"{name}: not a camt.053 statement: root element is {root.tag!r} "
             "(expected Document in urn:iso:std:iso:20022:tech:xsd:camt.053.001.xx)"]
        )
    ns = {"c": ns_match.group(1)}

    def text(el: Element | None, path: str) -> str | None:
        if el is None:
            return None
        found = el.find(path, ns)
        return found.text.strip() if found is not None and found.text else None

    statements = root.findall("c:BkToCstmrStmt/c:Stmt", ns)
    if not statements:
        raise StatementFormatError([f"{name}: no BkToCstmrStmt/Stmt element"])
    errors: list[str] = []
    lines: list[StatementLine] = []
    ids: list[str] = []
    account = ""
    starts: list[datetime] = []
    ends: list[datetime] = []
    line_no = 0
    for s_idx, stmt in enumerate(statements, start=1):
        where = f"{name}: Stmt[{s_idx}]"
        stmt_id = text(stmt, "c:Id")
        if not stmt_id:
            errors.append(f"{where}: missing Id")
            continue
        ids.append(stmt_id)
        account = text(stmt, "c:Acct/c:Id/c:IBAN") or text(stmt, "c:Acct/c:Id/c:Othr/c:Id") or account
        fr, to = text(stmt, "c:FrToDt/c:FrDtTm"), text(stmt, "c:FrToDt/c:ToDtTm")
        try:
            if fr:
                starts.append(_camt_time(fr))
            if to:
                ends.append(_camt_time(to))
        except ValueError as exc:
            errors.append(f"{where}: FrToDt: {exc}")
        for n_idx, entry in enumerate(stmt.findall("c:Ntry", ns), start=1):
            line_no += 1
            here = f"{where}/Ntry[{n_idx}]"
            amt = entry.find("c:Amt", ns)
            try:
                if amt is None or not amt.text:
                    raise ValueError("missing Amt")
                currency = amt.get("Ccy", "")
                if currency not in KNOWN_CURRENCIES:
                    raise ValueError(f"Amt/@Ccy {currency!r} is not a known ISO 4217 code")
                amount = Decimal(amt.text.strip())
                if not amount.is_finite() or amount < 0 or amount != amount.quantize(quantum(currency)):
                    raise ValueError(f"Amt {amt.text!r} is not a valid {currency} amount")
                indicator = text(entry, "c:CdtDbtInd")
                if indicator not in ("CRDT", "DBIT"):
                    raise ValueError(f"CdtDbtInd must be CRDT or DBIT, not {indicator!r}")
                status = text(entry, "c:Sts/c:Cd") or text(entry, "c:Sts")
                booked_text = text(entry, "c:BookgDt/c:DtTm") or text(entry, "c:BookgDt/c:Dt")
                booked_at = _camt_time(booked_text) if booked_text else None
                acct_ref = text(entry, "c:AcctSvcrRef")
                tx = entry.find("c:NtryDtls/c:TxDtls", ns)
                ref = text(tx, "c:RmtInf/c:Strd/c:CdtrRefInf/c:Ref")
                if ref is None:
                    unstructured = " ".join(
                        u.text for u in (tx.findall("c:RmtInf/c:Ustrd", ns) if tx is not None else []) if u.text
                    )
                    ref = _find_rf(unstructured) if unstructured else None
                end_to_end = text(tx, "c:Refs/c:EndToEndId")
                provider_ref = acct_ref or (end_to_end if end_to_end not in (None, "NOTPROVIDED") else None)
                if provider_ref is None:
                    raise ValueError("neither AcctSvcrRef nor EndToEndId identifies the entry")
            except (ValueError, InvalidOperation) as exc:
                errors.append(f"{here}: {exc}")
                continue
            signed = amount if indicator == "CRDT" else -amount
            lines.append(
                StatementLine(
                    line_no=line_no,
                    kind="credit" if indicator == "CRDT" else "debit",
                    provider_ref=provider_ref,
                    payment_reference=normalise_reference(ref) if ref else None,
                    currency=currency,
                    amount=signed,
                    fee=Decimal(0),
                    net=signed,
                    payout_id=None,
                    booked_at=booked_at,
                    booked=status in (None, "BOOK"),
                )
            )
            if len(errors) >= MAX_ERRORS:
                break
    if errors:
        raise StatementFormatError(errors)
    if not starts:
        times = [ln.booked_at for ln in lines if ln.booked_at]
        if not times:
            raise StatementFormatError([f"{name}: no FrToDt and no booking dates: the period is unknown"])
        starts, ends = [min(times)], [max(times) + timedelta(microseconds=1)]
    start = min(starts)
    if ends:
        end = max(ends)
    else:
        booked = [ln.booked_at for ln in lines if ln.booked_at]
        end = max(booked) + timedelta(microseconds=1) if booked else start + timedelta(days=1)
    return ParsedStatement(
        kind="camt053",
        source=account or "bank",
        statement_id=f"camt053:{account}:{','.join(ids)}"[:140],
        period_start=start,
        period_end=end,
        sha256=hashlib.sha256(data).hexdigest(),
        lines=lines,
    )


def _camt_time(value: str) -> datetime:
    """ISODateTime or ISODate; a time without a zone is taken as UTC (camt allows local)."""
    if len(value) == 10:
        return datetime.combine(date.fromisoformat(value), time(0), tzinfo=UTC)
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_statement(data: bytes, *, provider: str = "sandbox", name: str = "statement") -> ParsedStatement:
    """Settlement CSV or camt.053 XML, told apart by the first non-blank character."""
    if is_camt(data):
        return parse_camt053(data, name=name)
    return parse_settlement_csv(data, provider=provider, name=name)


def is_camt(data: bytes) -> bool:
    """XML (a camt.053, or nothing we read) rather than a settlement CSV."""
    head = data.lstrip()[:4]
    return head[:1] == b"<" or (head[:3] == b"\xef\xbb\xbf" and data.lstrip()[3:4] == b"<")


def describe(parsed: ParsedStatement) -> dict[str, Any]:
    return {"kind": parsed.kind, "source": parsed.source, "statement_id": parsed.statement_id,
            "lines": len(parsed.lines)}
