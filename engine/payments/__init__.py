"""Payments: provider adapters, automatic collection that never charges twice, refunds,
customer credit, manual and bank-transfer payments, reconciliation of settlement reports and
camt.053 statements, and the double-entry journal export.

Depends on engine.store, engine.clock and engine.money only; sales hands over a
`CollectableInvoice` (or the invoice.finalized event) and learns outcomes from events:

  emits    payment.succeeded, payment.failed, payment.refunded, invoice.payment_failed,
           reconciliation.mismatch
  consumes invoice.finalized (handle_invoice_finalized), subscription.created with a
           payment_method (handle_payment_method_attached), a retry request
           (handle_payment_retry)

A `System` owns its `PaymentService([SandboxAdapter(url)], clock)` and passes it to every
function here (`service=`) and to `handlers(service)`; there is no process-wide service.
"""

from engine.payments.collection import (
    CollectableInvoice,
    CollectionResult,
    PaymentError,
    PaymentService,
    RefundRejected,
    add_payment_method,
    attempt_key,
    collect_due_invoices,
    collect_invoice,
    customer_credit_balance,
    default_payment_method,
    invoice_payment_summary,
    open_receivable,
    record_manual_payment,
    refund_payment,
    repair_pending,
    retry_invoice_payment,
)
from engine.payments.handlers import (
    handle_invoice_finalized,
    handle_payment_method_attached,
    handle_payment_retry,
    handlers,
)
from engine.payments.journal import ExportSummary, UnbalancedEntry, export_journal_csv
from engine.payments.provider import (
    ChargeOutcome,
    ChargeRequest,
    PaymentState,
    ProviderAdapter,
    ProviderError,
    ProviderRejected,
    ProviderTimeout,
    RefundOutcome,
    RefundRequest,
    WebhookEvent,
    WebhookRejected,
)
from engine.payments.reconcile import (
    ReconciliationError,
    ReconciliationReport,
    reconcile_file,
    reconcile_statement,
)
from engine.payments.references import (
    creditor_reference,
    invoice_reference,
    is_valid_creditor_reference,
)
from engine.payments.sandbox import TEST_CARDS, create_sandbox_app, run_sandbox
from engine.payments.sandbox_adapter import SandboxAdapter
from engine.payments.statements import (
    StatementFormatError,
    parse_camt053,
    parse_settlement_csv,
    parse_statement,
)
from engine.payments.stripe_adapter import StripeAdapter
from engine.payments.webhooks import WebhookResult, apply_webhook, webhook_router

__all__ = [
    "TEST_CARDS",
    "ChargeOutcome",
    "ChargeRequest",
    "CollectableInvoice",
    "CollectionResult",
    "ExportSummary",
    "PaymentError",
    "PaymentService",
    "PaymentState",
    "ProviderAdapter",
    "ProviderError",
    "ProviderRejected",
    "ProviderTimeout",
    "ReconciliationError",
    "ReconciliationReport",
    "RefundOutcome",
    "RefundRejected",
    "RefundRequest",
    "SandboxAdapter",
    "StatementFormatError",
    "StripeAdapter",
    "UnbalancedEntry",
    "WebhookEvent",
    "WebhookRejected",
    "WebhookResult",
    "add_payment_method",
    "apply_webhook",
    "attempt_key",
    "collect_due_invoices",
    "collect_invoice",
    "create_sandbox_app",
    "creditor_reference",
    "customer_credit_balance",
    "default_payment_method",
    "export_journal_csv",
    "handle_invoice_finalized",
    "handle_payment_method_attached",
    "handle_payment_retry",
    "handlers",
    "invoice_payment_summary",
    "invoice_reference",
    "is_valid_creditor_reference",
    "open_receivable",
    "parse_camt053",
    "parse_settlement_csv",
    "parse_statement",
    "reconcile_file",
    "reconcile_statement",
    "record_manual_payment",
    "refund_payment",
    "repair_pending",
    "retry_invoice_payment",
    "run_sandbox",
    "webhook_router",
]
