"""ISO 20022 bank files: camt.053 statements and camt.054 debit/credit notifications, versions
.001.02 to .001.13, as real banks send them.

One `StatementLine` per transaction: an entry (`Ntry`) with several `TxDtls` (a batch) gives
one line per `TxDtls`, each with its own amount and reference; an entry without details gives
one line. Every line has an identity that stays the same when the same file, or the same
entry in another file, is imported again:

- the entry's `AcctSvcrRef`, else (one transaction) the transaction's `AcctSvcrRef` or
  `EndToEndId` (not `NOTPROVIDED`), else `h:` + a SHA-256 of the entry's content (every
  element's local name and text, in order, so indentation and schema version do not count),
  with `#2`, `#3` for identical entries of one statement;
- a batch's lines: the entry's identity + `/1`, `/2`, ... in document order.

References, per line: the structured creditor reference (`Strd/CdtrRefInf/Ref`): ISO 11649
(`RF..`), or the Swiss QR reference / ISR (27 digits, or 16, with a mod-10 recursive check
digit); else an RF reference in the free text (`Ustrd`); the free text is kept so that an
invoice number in it can be looked up (engine/payments/bank/match.py).

The whole file is checked before anything is kept: every problem is reported as
`file:line: path/Element: message`, the line being where that element starts.

Parsed with the C expat parser after refusing any DTD (`<!DOCTYPE`) and any encoding other
than UTF-8/ASCII, so no entity can be declared, expanded or fetched.
"""

from __future__ import annotations

import gc
import hashlib
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, TypeGuard
from xml.etree.ElementTree import Element, ParseError, XMLParser

from engine.money import KNOWN_CURRENCIES, quantum
from engine.payments.references import (
    is_valid_creditor_reference,
    is_valid_normalised_rf,
    is_valid_qr_reference,
    normalise_reference,
)
from engine.payments.statements import (
    MAX_ERRORS,
    ParsedStatement,
    StatementFormatError,
    StatementLine,
    is_camt,
    parse_settlement_csv,
)

ZERO = Decimal(0)
_NS = re.compile(r"^urn:iso:std:iso:20022:tech:xsd:camt\.(053|054)\.001\.(\d{2})$")
_ANY_CAMT = re.compile(r"^urn:iso:std:iso:20022:tech:xsd:([a-z]{4}\.\d{3}\.\d{3}\.\d{2})$")
# message -> (root child, statement element)
_MESSAGES = {"053": ("BkToCstmrStmt", "Stmt"), "054": ("BkToCstmrDbtCdtNtfctn", "Ntfctn")}
_FIRST_VERSION, _LAST_VERSION = 2, 13
# Bank transaction sub-family codes of a returned or reversed payment (ISO external code list).
_RETURN_CODES = {"RRTN", "RPCR", "UPDD", "ARET"}
# A reference in free text: contiguous, or printed in groups of four ("RF18 5390 0754 7034").
# Every printed group has four characters but the last, so a short group ends the reference.
_RF_IN_TEXT = re.compile(r"\bRF\d{2}(?:[0-9A-Z]{1,21}\b|(?: [0-9A-Z]{4}\b){0,5}(?: [0-9A-Z]{1,4}\b)?)")
_ENCODING = re.compile(rb"^\s*<\?xml[^>]*encoding\s*=\s*[\"']([A-Za-z0-9._-]+)[\"']")


@contextmanager
def paused_gc() -> Iterator[None]:
    """The cyclic garbage collector off while a large file is read or matched: it builds
    millions of acyclic objects (elements, lines, rows), and the collector's repeated scans of
    them cost as much as the work itself at 100,000 lines. Process-wide, so only for the
    duration of that work; collection resumes afterwards."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


class _Problem(Exception):
    def __init__(self, element: Element | None, message: str) -> None:
        super().__init__(message)
        self.element, self.message = element, message


def find_rf(text: str) -> str | None:
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


def classify_reference(ref: str, kind_hint: str | None = None) -> tuple[str, str | None]:
    """(normalised reference, rf | qrr | isr | None)."""
    clean = normalise_reference(ref)
    if clean.startswith("RF") and is_valid_normalised_rf(clean):
        return clean, "rf"
    if clean.isdigit() and len(clean) in (16, 27) and is_valid_qr_reference(clean):
        hint = (kind_hint or "").upper()
        return clean, "isr" if ("ISR" in hint or "ESR" in hint or len(clean) == 16) else "qrr"
    return clean, None


def _safe_tree(data: bytes, name: str) -> Element:
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") or data[:4] in (b"\x00\x00\xfe\xff", b"\xff\xfe\x00\x00"):
        raise StatementFormatError([f"{name}:1: not UTF-8: camt files are UTF-8"])
    declared = _ENCODING.match(data[:200])
    if declared and declared.group(1).decode().lower().replace("_", "-") not in ("utf-8", "utf8", "us-ascii", "ascii"):
        raise StatementFormatError(
            [f"{name}:1: encoding {declared.group(1).decode()!r}: camt files are UTF-8"])
    at = data.find(b"<!DOCTYPE")
    if at < 0:
        at = data.find(b"<!ENTITY")
    if at >= 0:
        line = data.count(b"\n", 0, at) + 1
        raise StatementFormatError([f"{name}:{line}: a DTD (<!DOCTYPE) is not accepted in a bank file"])
    parser = XMLParser()
    try:
        parser.feed(data)
        return parser.close()
    except ParseError as exc:
        line, column = exc.position
        reason = str(exc).split(":")[0]
        if reason.startswith("no element found") or "unclosed token" in reason:
            reason += " (the file is truncated or not closed)"
        raise StatementFormatError([f"{name}:{line}: not well-formed XML: {reason} (column {column + 1})"]) from None


def _element_lines(data: bytes) -> list[int]:
    """The line where each element starts, in document order (the order of Element.iter()).
    Only run when a file has problems to report."""
    from xml.parsers import expat

    lines: list[int] = []
    p = expat.ParserCreate()

    def start(_name: str, _attrs: Any) -> None:
        lines.append(p.CurrentLineNumber)

    p.StartElementHandler = start
    p.Parse(data, True)
    return lines


def _has_text(el: Element | None) -> TypeGuard[Element]:
    """The element is there and has text other than blanks."""
    return el is not None and bool((el.text or "").strip())


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_camt(data: bytes, *, name: str = "statement.xml",
               currencies: Callable[[set[str]], set[str]] | None = None) -> ParsedStatement:
    """See _parse_camt."""
    with paused_gc():
        return _parse_camt(data, name, currencies)


def _parse_camt(data: bytes, name: str,
                currencies: Callable[[set[str]], set[str]] | None) -> ParsedStatement:
    """A camt.053 statement or camt.054 notification (versions .001.02 to .001.13). Raises
    StatementFormatError listing every problem (file, line, element) when anything is wrong.
    `currencies(seen)` may answer which of the currencies seen the system uses: a statement in
    another currency is refused."""
    root = _safe_tree(data, name)
    namespace, message = _message(root, data, name)
    reader = _Reader(namespace, name)
    reader.document(root, message)
    if not reader.problems and currencies is not None:
        reader.check_currencies(currencies)
    if reader.problems:
        raise StatementFormatError(_format(reader.problems, root, data, name))
    start, end = _period(reader)
    return ParsedStatement(
        kind=f"camt{message}",
        source=reader.account or "bank",
        statement_id=f"camt{message}:{reader.account}:{','.join(reader.ids)}"[:140],
        period_start=start,
        period_end=end,
        sha256=hashlib.sha256(data).hexdigest(),
        lines=reader.lines,
    )


def _message(root: Element, data: bytes, name: str) -> tuple[str, str]:
    """The namespace and the message (053 or 054) of a camt document in a version we read."""
    ns_match = re.match(r"^\{([^}]*)\}Document$", root.tag)
    namespace = ns_match.group(1) if ns_match else ""
    version = _NS.match(namespace)
    if version is None or not _FIRST_VERSION <= int(version.group(2)) <= _LAST_VERSION:
        raise StatementFormatError(
            [f"{name}:{_root_line(data)}: Document: {_what_document(root, namespace)} is not a bank statement; "
             "expected camt.053.001.02-.13 (BkToCstmrStmt) or camt.054.001.02-.13 (BkToCstmrDbtCdtNtfctn)"]
        )
    return namespace, version.group(1)


def _what_document(root: Element, namespace: str) -> str:
    other = _ANY_CAMT.match(namespace)
    if other:
        return f"a {other.group(1)} message"
    if namespace:
        return f"root element {_local(root.tag)!r} in namespace {namespace!r}"
    return f"root element {root.tag!r} without a namespace"


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def _period(reader: _Reader) -> tuple[datetime, datetime]:
    """The statement's FrToDt; without it, the booking days (or the creation day) it covers."""
    days = [ln.booked_on for ln in reader.lines if ln.booked_on]
    if reader.starts:
        start = min(reader.starts)
    elif days:
        start = _midnight(min(days))
    else:
        start = _midnight((reader.created or datetime.now(UTC)).date())
    if reader.starts and reader.ends:
        return start, max(reader.ends)
    # Without FrToDt a booking date is a whole day: the period ends at the last day's end.
    return start, _midnight(max(days) if days else start.date()) + timedelta(days=1)


def _root_line(data: bytes) -> int:
    at = data.find(b"<Document")
    return data.count(b"\n", 0, at) + 1 if at >= 0 else 1


def _format(problems: list[_Problem], root: Element, data: bytes, name: str) -> list[str]:
    order = {id(el): i for i, el in enumerate(root.iter())}
    try:
        lines = _element_lines(data)
    except Exception:
        lines = []
    out = []
    for p in problems[:MAX_ERRORS]:
        idx = order.get(id(p.element)) if p.element is not None else None
        line = lines[idx] if idx is not None and idx < len(lines) else 0
        out.append(f"{name}:{line}: {p.message}" if line else f"{name}: {p.message}")
    if len(problems) >= MAX_ERRORS:
        out.append(f"{name}: stopped after {MAX_ERRORS} problems")
    return out


class _Reader:
    def __init__(self, namespace: str, name: str) -> None:
        self.q = f"{{{namespace}}}"
        self.name = name
        self.problems: list[_Problem] = []
        self.lines: list[StatementLine] = []
        self.ids: list[str] = []
        self.account = ""
        self.account_currencies: dict[str, Element] = {}
        self.first_amount: dict[str, Element] = {}
        self.starts: list[datetime] = []
        self.ends: list[datetime] = []
        self.created: datetime | None = None
        self.line_no = 0
        self._steps: dict[str, list[str]] = {}
        self._times: dict[str, datetime] = {}

    # small helpers: children by local name, without XPath
    def child(self, el: Element | None, tag: str) -> Element | None:
        return None if el is None else el.find(self.q + tag)

    def path(self, el: Element | None, path: str) -> Element | None:
        """The element at `path` (local names separated by /): one C-level find per step
        (ElementTree's path engine is Python, and this runs a dozen times per line; a plain
        namespaced tag takes the C loop over the children)."""
        steps = self._steps.get(path)
        if steps is None:
            steps = self._steps[path] = [self.q + p for p in path.split("/")]
        for step in steps:
            if el is None:
                return None
            el = el.find(step)
        return el

    def text(self, el: Element | None, path: str) -> str | None:
        """The stripped text at `path`, None where the element is missing or blank (path()
        inlined: this is the parser's most frequent call)."""
        steps = self._steps.get(path)
        if steps is None:
            steps = self._steps[path] = [self.q + p for p in path.split("/")]
        for step in steps:
            if el is None:
                return None
            el = el.find(step)
        if el is None or el.text is None:
            return None
        return el.text.strip() or None

    def document(self, root: Element, message: str) -> None:
        container, stmt_tag = _MESSAGES[message]
        body = root.find(self.q + container)
        statements = [] if body is None else body.findall(self.q + stmt_tag)
        if not statements:
            self.problems.append(_Problem(body if body is not None else root,
                                          f"no {container}/{stmt_tag} element: a camt.{message} "
                                          f"message has at least one {stmt_tag}"))
        for s_idx, stmt in enumerate(statements, start=1):
            self.statement(stmt, f"{stmt_tag}[{s_idx}]")
            if len(self.problems) >= MAX_ERRORS:
                break

    def check_currencies(self, currencies: Callable[[set[str]], set[str]]) -> None:
        """A problem for each currency seen that the system does not use."""
        seen = {ln.currency for ln in self.lines} | set(self.account_currencies)
        used = currencies(seen)
        for cur in sorted(seen - used):
            el = self.account_currencies.get(cur) or self.first_amount.get(cur)
            self.problems.append(_Problem(el, f"{cur}: no account or invoice of this system uses {cur}; "
                                              "is this statement for another company's account?"))

    def statement(self, stmt: Element, where: str) -> None:
        stmt_id = self.text(stmt, "Id")
        if not stmt_id:
            self.problems.append(_Problem(stmt, f"{where}/Id: missing; every statement has an Id"))
            return
        self.ids.append(stmt_id)
        self.statement_account(stmt, where)
        self.statement_times(stmt, where)
        seen: dict[str, int] = {}
        for n_idx, entry in enumerate(stmt.findall(self.q + "Ntry"), start=1):
            try:
                self.entry(entry, f"{where}/Ntry[{n_idx}]", seen)
            except _Problem as p:
                self.problems.append(p)
            if len(self.problems) >= MAX_ERRORS:
                return

    def statement_account(self, stmt: Element, where: str) -> None:
        """The account (IBAN or other id) and its currency, which must be an ISO 4217 one."""
        acct = self.child(stmt, "Acct")
        self.account = (self.text(acct, "Id/IBAN") or self.text(acct, "Id/Othr/Id") or self.account)
        ccy_el = self.child(acct, "Ccy")
        if ccy_el is None or not ccy_el.text:
            return
        cur = ccy_el.text.strip()
        if cur not in KNOWN_CURRENCIES:
            self.problems.append(_Problem(ccy_el, f"{where}/Acct/Ccy: {cur!r} is not an ISO 4217 currency"))
        self.account_currencies.setdefault(cur, ccy_el)

    def statement_times(self, stmt: Element, where: str) -> None:
        """The period (FrToDt) and the first creation time of the file's statements."""
        created = self.text(stmt, "CreDtTm")
        for tag, target in (("FrDtTm", self.starts), ("ToDtTm", self.ends)):
            value = self.text(stmt, f"FrToDt/{tag}")
            if not value:
                continue
            try:
                target.append(camt_time(value, end=tag == "ToDtTm"))
            except ValueError as exc:
                self.problems.append(_Problem(self.path(stmt, f"FrToDt/{tag}"), f"{where}/FrToDt/{tag}: {exc}"))
        if created and self.created is None:
            with suppress(ValueError):  # an unreadable creation time only loses a fallback
                self.created = camt_time(created)

    def optional_amount(self, el: Element | None, where: str) -> tuple[Decimal, str] | None:
        """`amount`, or None where the element is missing or empty."""
        return self.amount(el, where) if _has_text(el) else None

    def amount(self, el: Element | None, where: str) -> tuple[Decimal, str]:
        if not _has_text(el):
            raise _Problem(el, f"{where}: missing amount")
        cur = el.get("Ccy", "")
        if cur not in KNOWN_CURRENCIES:
            raise _Problem(el, f"{where}/@Ccy: {cur!r} is not an ISO 4217 currency")
        try:
            value = Decimal((el.text or "").strip())
        except InvalidOperation:
            raise _Problem(el, f"{where}: {el.text!r} is not a decimal amount") from None
        if not value.is_finite() or value < 0 or value != value.quantize(quantum(cur)):
            raise _Problem(el, f"{where}: {el.text!r} is not a valid {cur} amount "
                               f"(at most {-int(quantum(cur).as_tuple().exponent)} decimals, not negative)")
        self.first_amount.setdefault(cur, el)
        return value, cur

    def entry(self, entry: Element, where: str, seen: dict[str, int]) -> None:
        q = self.q
        amount, currency = self.amount(self.path(entry, "Amt"), f"{where}/Amt")
        common = self.entry_facts(entry, where)
        family = self.text(entry, "BkTxCd/Domn/Fmly/SubFmlyCd")
        entry_charges = self.charges(self.path(entry, "Chrgs"), f"{where}/Chrgs")
        # findall of a plain tag loops in C; iterfind goes through the Python path engine
        txs = [tx for d in entry.findall(q + "NtryDtls") for tx in d.findall(q + "TxDtls")]
        identity = common["entry_ref"] = self.entry_identity(entry, txs, seen)
        signed = 1 if common["kind"] == "credit" else -1
        entry_text = self.text(entry, "AddtlNtryInf")
        amounts = self.tx_amounts(txs, where)
        # A batch is split when every transaction gives its amount in the entry's currency;
        # otherwise (amounts missing, or in the currency sent) it stays one line.
        if len(txs) > 1 and all(a is not None and a[1] == currency for a in amounts):
            self.add_batch(txs, amounts, where, signed, currency, identity, family, entry_text, common)
            return
        only = txs[0] if len(txs) == 1 else None  # an unsplit batch names no one transaction
        self.add(only, where if only is None else f"{where}/TxDtls[1]", amount * signed, currency, identity,
                 family, entry_charges, entry_text, common, batch=len(txs),
                 instructed=_instructed_total(amounts, currency))

    def add_batch(self, txs: list[Element], amounts: list[tuple[Decimal, str] | None], where: str, signed: int,
                  currency: str, identity: str, family: str | None, entry_text: str | None,
                  common: dict[str, Any]) -> None:
        """A batch split: one line per transaction, with its own amount and identity `/k`."""
        for k, (tx, amt) in enumerate(zip(txs, amounts, strict=True), start=1):
            assert amt is not None
            self.add(tx, f"{where}/TxDtls[{k}]", amt[0] * signed, currency, f"{identity}/{k}",
                     family, None, entry_text, common)

    def entry_facts(self, entry: Element, where: str) -> dict[str, Any]:
        """What every line of an entry shares: credit or debit, booked or not, when, reversed."""
        indicator = self.text(entry, "CdtDbtInd")
        if indicator not in ("CRDT", "DBIT"):
            el = self.path(entry, "CdtDbtInd")
            raise _Problem(entry if el is None else el, f"{where}/CdtDbtInd: must be CRDT or DBIT, not {indicator!r}")
        reversal = (self.text(entry, "RvslInd") or "").lower() in ("true", "1")
        status = self.text(entry, "Sts/Cd") or self.text(entry, "Sts")
        booked_at = self.booking(entry, where)
        return dict(kind="credit" if indicator == "CRDT" else "debit", booked_at=booked_at,
                    booked=status in (None, "BOOK"), booked_on=booked_at.date() if booked_at else None,
                    reversal=reversal)

    def booking(self, entry: Element, where: str) -> datetime | None:
        booked_text = self.text(entry, "BookgDt/DtTm") or self.text(entry, "BookgDt/Dt")
        if not booked_text:
            return None
        try:
            found = self._times.get(booked_text)
            if found is None:  # a file has few booking days: each read once
                found = self._times[booked_text] = camt_time(booked_text)
            return found
        except ValueError as exc:
            raise _Problem(self.path(entry, "BookgDt"), f"{where}/BookgDt: {exc}") from None

    def entry_identity(self, entry: Element, txs: list[Element], seen: dict[str, int]) -> str:
        """The bank's reference of the entry (or of its one transaction), else a digest of its
        content; the n-th repeat of one in a file gets `#n`."""
        identity = (self.text(entry, "AcctSvcrRef")
                    or (self._tx_identity(txs[0]) if len(txs) == 1 else None))
        if identity is None:
            digest = hashlib.sha256(_content(entry).encode()).hexdigest()[:32]
            identity = f"h:{digest}"
        n = seen.get(identity, 0) + 1
        seen[identity] = n
        return f"{identity}#{n}" if n > 1 else identity

    def tx_amounts(self, txs: list[Element], where: str) -> list[tuple[Decimal, str] | None]:
        """Each transaction's own amount (Amt, or AmtDtls/TxAmt), None where it says none."""
        return [self.optional_amount(self.path(tx, "Amt"), f"{where}/TxDtls[{k}]/Amt")
                or self.optional_amount(self.path(tx, "AmtDtls/TxAmt/Amt"), f"{where}/TxDtls[{k}]/AmtDtls/TxAmt/Amt")
                for k, tx in enumerate(txs, start=1)]

    def _tx_identity(self, tx: Element) -> str | None:
        ref = self.text(tx, "Refs/AcctSvcrRef")
        if ref:
            return ref
        e2e = self.text(tx, "Refs/EndToEndId")
        return e2e if e2e and e2e.upper() != "NOTPROVIDED" else None

    def charges(self, el: Element | None, where: str) -> tuple[Decimal, Decimal]:
        """(deducted from the amount, reported) for a Chrgs element. Version .02 lists
        charges with no inclusion indicator: reported only."""
        if el is None:
            return ZERO, ZERO
        q = self.q
        deducted = reported = ZERO
        total = el.find(q + "TtlChrgsAndTaxAmt")
        records = el.findall(q + "Rcrd")
        if records:
            for i, rec in enumerate(records, start=1):
                amt = self.amount(rec.find(q + "Amt"), f"{where}/Rcrd[{i}]/Amt")
                reported += amt[0]
                if (self.text(rec, "ChrgInclInd") or "").lower() in ("true", "1"):
                    deducted += amt[0]
        elif el.find(q + "Amt") is not None:  # .02: Chrgs repeated, each with its Amt
            reported = self.amount(el.find(q + "Amt"), f"{where}/Amt")[0]
        if total is not None:
            reported = self.amount(total, f"{where}/TtlChrgsAndTaxAmt")[0]
        return deducted, reported

    def add(self, tx: Element | None, where: str, signed: Decimal, currency: str, identity: str,
            family: str | None, entry_charges: tuple[Decimal, Decimal] | None, entry_text: str | None,
            common: dict[str, Any], batch: int = 0,
            instructed: tuple[Decimal, str] | None = None) -> None:
        self.line_no += 1
        ref = kind = None
        texts: list[str] = []
        deducted, reported = entry_charges or (ZERO, ZERO)
        rate: Decimal | None = None
        debtor: str | None = None
        returned = family if family in _RETURN_CODES else None
        if tx is not None:
            q = self.q
            tags = {child.tag for child in tx}  # the optional parts looked up only when there
            ref, kind, texts = self.remittance(tx)
            returned = self.returned(tx, family, tags)
            if q + "RltdPties" in tags:
                debtor = self.text(tx, "RltdPties/Dbtr/Nm") or self.text(tx, "RltdPties/Dbtr/Pty/Nm")
            if q + "Chrgs" in tags:
                deducted, reported = self.charges(self.path(tx, "Chrgs"), f"{where}/Chrgs")
            if q + "AmtDtls" in tags:
                instructed, rate = self.instructed(tx, where, currency, instructed)
        if entry_text and (tx is None or batch > 1):
            texts.append(entry_text)
        text = " ".join(texts) or None
        ref, kind = _with_text_rf(ref, kind, text)
        self.lines.append(StatementLine(
            line_no=self.line_no, kind=common["kind"], provider_ref=identity,
            payment_reference=ref, currency=currency, amount=signed, fee=deducted,
            net=signed, payout_id=None, booked_at=common["booked_at"], booked=common["booked"],
            where=where, entry_ref=common["entry_ref"], booked_on=common["booked_on"], ref_kind=kind,
            text=text[:300] if text else None, debtor=debtor[:140] if debtor else None,
            reversal=common["reversal"], returned=returned, charges_deducted=deducted,
            charges_reported=reported, instructed=instructed, fx_rate=rate,
        ))

    def remittance(self, tx: Element) -> tuple[str | None, str | None, list[str]]:
        """(reference, its kind, the remittance texts) of a transaction: the first structured
        creditor reference, then the additional and unstructured texts."""
        q = self.q
        ref = kind = None
        texts: list[str] = []
        rmt = tx.findall(q + "RmtInf")
        for strd in (s for r in rmt for s in r.findall(q + "Strd")):
            raw = self.text(strd, "CdtrRefInf/Ref")
            if raw and ref is None:
                ref, kind = self.creditor_reference(strd, raw)
            extra = self.text(strd, "AddtlRmtInf")
            if extra:
                texts.append(extra)
        texts += [u.text.strip() for r in rmt for u in r.findall(q + "Ustrd") if u.text and u.text.strip()]
        return ref, kind, texts

    def creditor_reference(self, strd: Element, raw: str) -> tuple[str, str]:
        """A structured creditor reference and its scheme (`other`: none we check, kept as given)."""
        scheme = self.path(strd, "CdtrRefInf/Tp/CdOrPrtry")
        hint = None if scheme is None else self.text(scheme, "Prtry") or self.text(scheme, "Cd")
        ref, kind = classify_reference(raw, hint)
        return ref, kind or "other"

    def returned(self, tx: Element, family: str | None, tags: set[str]) -> str | None:
        """The return reason of a returned transfer (RtrInf, or a return bank transaction
        code); `tags` are the transaction's children's."""
        if self.q + "RtrInf" in tags:
            rtr = self.path(tx, "RtrInf")
            return self.text(rtr, "Rsn/Cd") or self.text(rtr, "Rsn/Prtry") or "RTRN"
        own = self.text(tx, "BkTxCd/Domn/Fmly/SubFmlyCd") if self.q + "BkTxCd" in tags else None
        tx_family = own or family
        return tx_family if tx_family in _RETURN_CODES else None

    def instructed(self, tx: Element, where: str, currency: str, given: tuple[Decimal, str] | None
                   ) -> tuple[tuple[Decimal, str] | None, Decimal | None]:
        """(the amount instructed in another currency, the exchange rate): `given` (the
        entry's, from its transactions' amounts) or the transaction's own; its InstdAmt is
        checked either way."""
        instd = self.path(tx, "AmtDtls/InstdAmt/Amt")
        if instd is None:
            return given, None
        amt = self.amount(instd, f"{where}/AmtDtls/InstdAmt/Amt")
        if given is not None or amt[1] == currency:
            return given, None
        rate_text = (self.text(tx, "AmtDtls/InstdAmt/CcyXchg/XchgRate")
                     or self.text(tx, "AmtDtls/TxAmt/CcyXchg/XchgRate"))
        if not rate_text:
            return amt, None
        try:
            return amt, Decimal(rate_text)
        except InvalidOperation:
            raise _Problem(tx, f"{where}/AmtDtls: XchgRate {rate_text!r} is not a number") from None


def _with_text_rf(ref: str | None, kind: str | None, text: str | None) -> tuple[str | None, str | None]:
    """Without a structured reference, an RF reference found in the free text."""
    found = find_rf(text) if ref is None and text else None
    return (found, "rf") if found else (ref, kind)


def _instructed_total(amounts: list[tuple[Decimal, str] | None], currency: str) -> tuple[Decimal, str] | None:
    """The sum the transactions were sent in, when every one gives its amount and all in one
    currency other than the entry's."""
    foreign = {a[1] for a in amounts if a is not None and a[1] != currency}
    if len(foreign) != 1 or any(a is None for a in amounts):
        return None
    return sum((a[0] for a in amounts if a is not None), ZERO), foreign.pop()


def _content(entry: Element) -> str:
    """An entry's content without its layout: local names, attributes and texts in order."""
    parts = []
    for el in entry.iter():
        attrs = ",".join(f"{k}={v}" for k, v in sorted(el.attrib.items()))
        parts.append(f"{_local(el.tag)}[{attrs}]={(el.text or '').strip()}")
    return "|".join(parts)


def camt_time(value: str, *, end: bool = False) -> datetime:
    """ISODateTime or ISODate. A date alone is a whole day (as a period's end: up to the end
    of that day). A time without a zone is taken as UTC (camt allows local time)."""
    if len(value) == 10:
        day = date.fromisoformat(value)
        return datetime.combine(day + timedelta(days=1) if end else day, time(0), tzinfo=UTC)
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    if end and parsed.second == 59 and parsed.minute == 59 and parsed.hour == 23:
        parsed += timedelta(seconds=1)  # "23:59:59" closes the day
    return parsed


def parse_statement(data: bytes, *, provider: str = "sandbox", name: str = "statement",
                    currencies: Callable[[set[str]], set[str]] | None = None) -> ParsedStatement:
    """Settlement CSV or camt.053 / camt.054 XML, told apart by the first non-blank character."""
    if is_camt(data):
        return parse_camt(data, name=name, currencies=currencies)
    return parse_settlement_csv(data, provider=provider, name=name)
