"""A provider's payout seen on the bank statement of the account the chart says it pays out to
(`cash.payouts`, docs/books.md): the settlement's payout entry already put its net on that
account (`cash:bank:<account>`), so the bank line that shows it arriving is matched to the payout
and posts nothing; it is not left open as money nobody recorded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.payments import journal
from engine.payments.models import BankLine, JournalLine
from engine.payments.statements import StatementLine

PAYOUT_DETAIL = "payout "  # the start of a payout line's detail: "payout po_1 on cash:bank:CH93..."


@dataclass(slots=True)
class Payouts:
    """The payouts posted to one bank account that no bank line has shown yet; read once, on the
    first line that names no invoice (most files have none, and pay nothing for this)."""

    account: str
    _open: list[tuple[str, str, Decimal]] | None = field(default=None)  # (payout id, currency, net)

    def find(self, session: Session, line: StatementLine) -> str | None:
        """The payout this credit shows: same currency and net, its id in the line's reference
        or text (a provider names its payout there); taken, so no second line clears it."""
        said = f"{line.payment_reference or ''} {line.text or ''}"
        for k, (payout, currency, net) in enumerate(self._read(session)):
            if currency == line.currency and net == line.amount and payout in said:
                del self._read(session)[k]
                return payout
        return None

    def _read(self, session: Session) -> list[tuple[str, str, Decimal]]:
        if self._open is None:
            account = journal.bank_cash_account(self.account)
            seen = set(
                session.scalars(
                    select(BankLine.detail).where(
                        BankLine.account == self.account, BankLine.detail.like(f"{PAYOUT_DETAIL}%")
                    )
                )
            )
            rows = session.execute(
                select(JournalLine.reference, JournalLine.currency, JournalLine.debit).where(
                    JournalLine.account == account, JournalLine.entry_id.like("payout:%"), JournalLine.debit > 0
                )
            )
            self._open = [(p or "", c, d) for p, c, d in rows if p and detail(p, account) not in seen]
        return self._open


def detail(payout: str, account: str) -> str:
    return f"{PAYOUT_DETAIL}{payout} on {account}"
