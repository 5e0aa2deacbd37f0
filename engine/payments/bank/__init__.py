"""Bank files against invoices, line by line, and what a person does with the rest.

Every transaction line of a camt.053 / camt.054 file is kept as a `BankLine` (unique per bank
account and identity, so the same entry in a later file is found again, never applied twice).
A booked credit that names an invoice (RF reference, Swiss QR/ISR reference built from the
invoice number, or the invoice number in the free text) is recorded as that invoice's bank
transfer; everything else that needs a person stays `open`:

| line | treatment |
|---|---|
| credit naming an open invoice, same currency | applied (`matched`; a partial or over-payment is `amount_mismatch`, the excess to customer credit) |
| credit naming nothing known | `open`, `missing_in_ledger`, with suggestions |
| credit in another currency than the invoice (or sent in another currency) | `open`, `currency_mismatch`: not applied; the amount sent and the rate are shown |
| charges the bank deducted (`ChrgInclInd` true) | the invoice is credited with what the customer paid (amount + charges); the charges are journalled `Dr bank_charges / Cr cash:bank` |
| charges only reported | shown with the line, not journalled (the bank books them as their own debit) |
| reversal (`RvslInd` true), either way | `open`, `reversal`: nothing is applied or undone automatically |
| returned payment (`RtrInf`, or a return bank transaction code) | `open`, `returned`, with the reason code |
| other debits (our refunds, fees) | `skipped` |
| not booked (`PDNG`, `INFO`) | `pending`: processed when a later file books it |

An operator confirms an open credit to one invoice, splits it over several, or dismisses a
line (nothing to apply); every decision is recorded with who and why
(`ReconciliationDecision`).

One module per job: `refs` (what a transfer may name an invoice by), `lookup` (what the
database already knows of a file's lines), `match` (each line's treatment), `write` (bank
lines and exact payments in bulk, COPY on PostgreSQL), `apply` (one transfer applied to one
invoice), `lines` (listing), `suggest` (suggestions for an open line), `decide` (an
operator's decision).
"""

from engine.payments.bank.apply import BANK_CHARGES, apply_transfer
from engine.payments.bank.decide import DecisionConflict, decide
from engine.payments.bank.lines import decision_to_dict, get_line, line_to_dict, list_lines
from engine.payments.bank.lookup import rows_where
from engine.payments.bank.match import match_bank
from engine.payments.bank.refs import bank_references, remember_invoice
from engine.payments.bank.suggest import SUGGESTION_DAYS, suggestions
from engine.payments.bank.write import ReconciliationError

__all__ = [
    "BANK_CHARGES",
    "SUGGESTION_DAYS",
    "DecisionConflict",
    "ReconciliationError",
    "apply_transfer",
    "bank_references",
    "decide",
    "decision_to_dict",
    "get_line",
    "line_to_dict",
    "list_lines",
    "match_bank",
    "remember_invoice",
    "rows_where",
    "suggestions",
]
