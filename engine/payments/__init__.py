"""Payments: provider adapters, automatic collection that never charges twice, refunds,
customer credit, manual and bank-transfer payments, reconciliation of settlement reports and
camt.053 statements, and the double-entry journal export.

Depends on engine.store, engine.clock and engine.money only; sales hands over a
`CollectableInvoice` (or the invoice.finalized event) and learns outcomes from events:

  emits    payment.succeeded, payment.failed (with decline_code and retryable),
           payment.refunded, invoice.payment_failed, payment_method.attached,
           payment_method.detached, reconciliation.mismatch
  consumes invoice.finalized (handle_invoice_finalized), subscription.created with a
           payment_method (handle_payment_method_attached), a retry request
           (handle_payment_retry), invoice.voided / invoice.uncollectible (the receivable
           is closed and journalled)

A `System` owns its `PaymentService([SandboxAdapter(url)], clock)` and passes it to every
function here (`service=`) and to its handlers (engine/system/subscriptions.py binds them);
there is no process-wide service.
"""

from engine.payments import bank
from engine.payments.adjustments import (
    check_refund,
    close_receivable,
    credit_receivable,
    handle_credit_note_issued,
    handle_invoice_closed,
    invoice_refunds,
    refund_invoice_payments,
    refund_to_dict,
    refundable,
)
from engine.payments.books.credits import (
    handle_credit_returned,
    handle_credits_expired,
    handle_credits_voided,
    refund_credit_pack,
)
from engine.payments.books.tokens import handle_credits_consumed, handle_tokens_expired
from engine.payments.camt import parse_camt, parse_statement
from engine.payments.camt import parse_camt as parse_camt053
from engine.payments.collection import (
    collect_due_invoices,
    collect_invoice,
    pay_invoice_now,
    repair_pending,
    retry_invoice_payment,
)
from engine.payments.handlers import (
    handle_invoice_finalized,
    handle_invoices_finalized,
    handle_payment_method_attached,
    handle_payment_retry,
)
from engine.payments.journal import ExportSummary, UnbalancedEntry, export_journal_csv
from engine.payments.manual import record_manual_payment
from engine.payments.method_store import add_payment_method, default_payment_method, default_payment_methods
from engine.payments.methods import (
    attach_payment_method,
    collect_open_invoices,
    detach_payment_method,
    find_payment_method,
    list_payment_methods,
    make_default,
    method_to_dict,
)
from engine.payments.provider import (
    ChargeOutcome,
    ChargeRequest,
    HostedSetup,
    HostedSetups,
    MethodChecking,
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
from engine.payments.queries import invoice_payment_summary, receivable_reference, receivable_references
from engine.payments.receivables import customer_credit_balance, open_receivable
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
from engine.payments.refunds import refund_payment
from engine.payments.sandbox import TEST_CARDS, create_sandbox_app, run_sandbox
from engine.payments.sandbox_adapter import SandboxAdapter
from engine.payments.service import (
    CollectableInvoice,
    CollectionResult,
    PaymentError,
    PaymentNotFound,
    PaymentService,
    RefundRejected,
    attempt_key,
)
from engine.payments.statements import StatementFormatError, parse_settlement_csv
from engine.payments.stripe_adapter import STRIPE_HOSTED_FORM, StripeAdapter
from engine.payments.webhooks import WebhookResult, apply_webhook, webhook_router

__all__ = [
    "STRIPE_HOSTED_FORM",
    "TEST_CARDS",
    "ChargeOutcome",
    "ChargeRequest",
    "CollectableInvoice",
    "CollectionResult",
    "ExportSummary",
    "HostedSetup",
    "HostedSetups",
    "MethodChecking",
    "PaymentError",
    "PaymentNotFound",
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
    "attach_payment_method",
    "attempt_key",
    "bank",
    "check_refund",
    "close_receivable",
    "collect_due_invoices",
    "collect_invoice",
    "collect_open_invoices",
    "create_sandbox_app",
    "credit_receivable",
    "creditor_reference",
    "customer_credit_balance",
    "default_payment_method",
    "default_payment_methods",
    "detach_payment_method",
    "export_journal_csv",
    "find_payment_method",
    "handle_credit_note_issued",
    "handle_credit_returned",
    "handle_credits_consumed",
    "handle_credits_expired",
    "handle_credits_voided",
    "handle_invoice_closed",
    "handle_invoice_finalized",
    "handle_invoices_finalized",
    "handle_payment_method_attached",
    "handle_payment_retry",
    "handle_tokens_expired",
    "invoice_payment_summary",
    "invoice_reference",
    "invoice_refunds",
    "is_valid_creditor_reference",
    "list_payment_methods",
    "make_default",
    "method_to_dict",
    "open_receivable",
    "parse_camt",
    "parse_camt053",
    "parse_settlement_csv",
    "parse_statement",
    "pay_invoice_now",
    "receivable_reference",
    "receivable_references",
    "reconcile_file",
    "reconcile_statement",
    "record_manual_payment",
    "refund_credit_pack",
    "refund_invoice_payments",
    "refund_payment",
    "refund_to_dict",
    "refundable",
    "repair_pending",
    "retry_invoice_payment",
    "run_sandbox",
    "webhook_router",
]
