"""ISO 11649 structured creditor references ("RF" + 2 check digits + up to 21 alphanumerics),
which bank transfers carry so that a bank statement line finds its invoice without a human."""

from __future__ import annotations

import hashlib
import re

_ALNUM = re.compile(r"[^0-9A-Z]")


# A-Z -> 10-35, as ISO 7064 mod 97-10 reads letters (one C-level translate, not a call per
# character: a 100,000-line bank file checks 100,000 references).
_LETTERS = str.maketrans({chr(ord("A") + i): str(10 + i) for i in range(26)})


def _mod97(text: str) -> int:
    return int(text.translate(_LETTERS)) % 97


def creditor_reference(body: str) -> str:
    """`RF` + check digits for `body` (1-21 characters, A-Z and 0-9 after upper-casing;
    spaces and punctuation are dropped)."""
    clean = _ALNUM.sub("", body.upper())
    if not 1 <= len(clean) <= 21:
        raise ValueError(f"a creditor reference body has 1-21 alphanumerics, got {clean!r}")
    check = 98 - _mod97(clean + "RF00")
    return f"RF{check:02d}{clean}"


_RF_SHAPE = re.compile(r"RF\d{2}[0-9A-Z]{1,21}")  # compiled once: a bank file checks one per line


def is_valid_creditor_reference(ref: str) -> bool:
    return is_valid_normalised_rf(_ALNUM.sub("", ref.upper()))


def is_valid_normalised_rf(clean: str) -> bool:
    """is_valid_creditor_reference of a reference already normalised (normalise_reference):
    a bank file's parser has it so, and skips cleaning it twice."""
    if not _RF_SHAPE.fullmatch(clean):
        return False
    return _mod97(clean[4:] + clean[:4]) == 1


def normalise_reference(ref: str) -> str:
    """How references are compared: upper case, without spaces (banks print them in groups
    of four)."""
    return _ALNUM.sub("", ref.upper())


def invoice_reference(invoice_id: str, *, digest: bool = False) -> str:
    """The structured reference of an invoice: its id without separators when that fits in
    21 alphanumerics, otherwise (or when asked, e.g. because two ids differ only in their
    separators) a 21-character digest of it. The receivables table keeps the mapping."""
    clean = _ALNUM.sub("", invoice_id.upper())
    if digest or not 1 <= len(clean) <= 21:
        number = int.from_bytes(hashlib.sha256(invoice_id.encode()).digest()[:14], "big")
        clean = _base36(number)[:21]
    return creditor_reference(clean)


def _base36(n: int) -> str:
    chars = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    out = []
    while n:
        n, r = divmod(n, 36)
        out.append(chars[r])
    return "".join(reversed(out)) or "0"


# --- Swiss QR reference (QRR) / ISR (ESR) ------------------------------------------------------
# 27 digits (ISR: also 16), the last a check digit by the recursive modulo-10 algorithm of the
# Swiss payment standards. Invoices carry one built from their number (`qr_reference`).
_MOD10_TABLE = (0, 9, 4, 6, 8, 2, 7, 1, 3, 5)


def mod10_recursive(digits: str) -> int:
    carry = 0
    for ch in digits:
        carry = _MOD10_TABLE[(carry + int(ch)) % 10]
    return (10 - carry) % 10


def is_valid_qr_reference(ref: str) -> bool:
    clean = ref.replace(" ", "")
    return (clean.isdigit() and len(clean) in (16, 27)
            and mod10_recursive(clean[:-1]) == int(clean[-1]))


def qr_reference(number: str) -> str | None:
    """The QR reference of an invoice number: its digits, zero-padded to 26, and the check
    digit (None when the number has no digit or more than 26)."""
    digits = "".join(ch for ch in number if ch.isdigit())
    if not digits or len(digits) > 26:
        return None
    body = digits.rjust(26, "0")
    return body + str(mod10_recursive(body))


def number_key(text: str) -> str:
    """How an invoice number is compared with a word of free text: upper case, letters and
    digits only ("2026-000123" and "2026 000123" compare equal)."""
    return _ALNUM.sub("", text.upper())
