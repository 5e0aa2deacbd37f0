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

Set up once per process: `configure(PaymentService([SandboxAdapter(url)], clock))`.
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
    configure,
    customer_credit_balance,
    default_payment_method,
    get_service,
    invoice_payment_summary,
    is_configured,
    open_receivable,
    record_manual_payment,
    refund_payment,
    repair_pending,
    retry_invoice_payment,
)
from engine.payments.handlers import (
    HANDLERS,
    handle_invoice_finalized,
    handle_payment_method_attached,
    handle_payment_retry,
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
    "HANDLERS",
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
    "configure",
    "create_sandbox_app",
    "creditor_reference",
    "customer_credit_balance",
    "default_payment_method",
    "export_journal_csv",
    "get_service",
    "handle_invoice_finalized",
    "handle_payment_method_attached",
    "handle_payment_retry",
    "invoice_payment_summary",
    "invoice_reference",
    "is_configured",
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
