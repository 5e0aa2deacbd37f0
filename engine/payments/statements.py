"""Parsers for what providers and banks send us: the sandbox's daily settlement CSV here, and
ISO 20022 camt.053 / camt.054 bank files (engine/payments/camt.py). Both validate the whole file before anything is
recorded; a broken line rejects the file with every problem listed."""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation

from engine.money import KNOWN_CURRENCIES, quantum

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
    # camt only (engine/payments/camt.py): where the line is, and what the bank said of it.
    where: str = ""  # Stmt[i]/Ntry[j] or Stmt[i]/Ntry[j]/TxDtls[k]
    xml_line: int = 0  # the line of its Ntry (TxDtls) element in the file
    entry_ref: str | None = None  # the identity of its Ntry (a batch's lines share it)
    booked_on: date | None = None  # the booking date: a whole day
    ref_kind: str | None = None  # rf | qrr | isr | number (an invoice number in free text)
    text: str | None = None  # the free-text remittance information (Ustrd)
    debtor: str | None = None
    reversal: bool = False  # RvslInd: the bank undoes an earlier entry
    returned: str | None = None  # a returned payment: its reason code (or RTRN)
    charges_deducted: Decimal = Decimal(0)  # taken by the bank from this credit (ChrgInclInd)
    charges_reported: Decimal = Decimal(0)  # charges the bank reports (booked on their own)
    instructed: tuple[Decimal, str] | None = None  # the amount sent, in another currency
    fx_rate: Decimal | None = None


@dataclass
class ParsedStatement:
    kind: str  # settlement_csv | camt053 | camt054
    source: str  # provider name, or the bank account (IBAN)
    statement_id: str
    period_start: datetime
    period_end: datetime
    sha256: str
    lines: list[StatementLine] = field(default_factory=list)


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), tzinfo=UTC)
    return start, start + timedelta(days=1)


# The sign each settlement type's gross must have, and the problem when it has not.
_GROSS_SIGN = {"charge": (1, "a charge has a positive gross"), "refund": (-1, "a refund has a negative gross")}


def _check_sign(kind: str, gross: Decimal) -> None:
    if kind not in _GROSS_SIGN:
        raise ValueError(f"type must be charge or refund, not {kind!r}")
    sign, problem = _GROSS_SIGN[kind]
    if gross * sign <= 0:
        raise ValueError(problem)


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
        self._quanta: dict[str, Decimal] = {}
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
        errors, size = self.errors, self.chunk_size
        lines: list[StatementLine] = []
        for no, row in enumerate(self._reader, start=2):
            if not row:
                continue
            line = self._line(no, row)
            if line is not None:
                lines.append(line)
                if len(lines) >= size:
                    yield lines
                    lines = []
            if len(errors) >= MAX_ERRORS:
                errors.append(f"{self.name}: stopped after {MAX_ERRORS} errors")
                break
        if lines:
            yield lines

    def _line(self, no: int, row: list[str]) -> StatementLine | None:
        """One row as a line, or None with its problem added to `errors`."""
        if len(row) != len(SETTLEMENT_COLUMNS):
            self.errors.append(f"{self.name}:{no}: expected {len(SETTLEMENT_COLUMNS)} fields, got {len(row)}")
            return None
        try:
            return self._parse(no, row)
        except InvalidOperation:
            self.errors.append(f"{self.name}:{no}: an amount is not a decimal")
        except (ValueError, ArithmeticError) as exc:
            self.errors.append(f"{self.name}:{no}: {exc}")
        return None

    def _parse(self, no: int, row: list[str]) -> StatementLine:
        sdate, payout, kind, ref, pref, cur, gross_s, fee_s, net_s, created_s = row
        self._check_day(sdate)
        q = self._quantum(cur)
        gross, fee, net = Decimal(gross_s), Decimal(fee_s), Decimal(net_s)
        if any(v.quantize(q) != v for v in (gross, fee, net)):
            raise ValueError(f"amounts have more decimals than {cur} allows")
        if gross - fee != net:
            raise ValueError(f"gross {gross_s} - fee {fee_s} != net {net_s}")
        _check_sign(kind, gross)
        if not ref:
            raise ValueError("provider_reference is empty")
        booked = None
        if created_s:
            booked = datetime.fromisoformat(created_s)
            if booked.tzinfo is None:
                raise ValueError("created_at has no timezone")
        return StatementLine(no, kind, ref, pref or None, cur, gross, fee, net, payout or None, booked)

    def _check_day(self, sdate: str) -> None:
        """The first row sets the settlement day; every other row must carry the same."""
        if self.day_text is None:
            date.fromisoformat(sdate)
            self.day_text = sdate
        elif sdate != self.day_text:
            raise ValueError(f"settlement_date {sdate} differs from {self.day_text}: one day per file")

    def _quantum(self, cur: str) -> Decimal:
        q = self._quanta.get(cur)
        if q is None:
            if cur not in KNOWN_CURRENCIES:
                raise ValueError(f"currency {cur!r} is not a known ISO 4217 code")
            q = self._quanta[cur] = quantum(cur)
        return q

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




def is_camt(data: bytes) -> bool:
    """XML (a camt.053 / camt.054, or nothing we read) rather than a settlement CSV."""
    head = data.lstrip()[:4]
    return head[:1] == b"<" or (head[:3] == b"\xef\xbb\xbf" and data.lstrip()[3:4] == b"<")
