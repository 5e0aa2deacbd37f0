"""Sales: customers, published catalog versions, subscriptions, usage and invoicing.

Everything takes the caller's SQLAlchemy session (one transaction: the state change and its
outbox events commit together) and an injectable clock. Bad input raises `SalesError`
(a ValueError naming the field) before anything is written.
"""

from engine.sales.accrual import UsageAccrual, unbilled_usage
from engine.sales.billing_run import RunReport, advance_clock, next_due, process_batch, run_due_billing
from engine.sales.budget import (
    budget_left,
    budget_status,
    check_budget,
    delete_budget,
    get_budget,
    handle_spend_changed,
    set_budget,
    spent,
)
from engine.sales.bulk import ScanFilter, customers_by_id, invoices_by_id, live_subscriptions, scan, subscriptions_by_id
from engine.sales.cancellation import Cancellation, cancel_subscription, cancel_subscriptions
from engine.sales.catalog_versions import (
    PublishedVersion,
    catalog_for_version,
    get_version,
    latest_version_for_plan,
    list_versions,
    publish_catalog,
)
from engine.sales.charges import handle_charge_requested
from engine.sales.coupons import apply_coupon
from engine.sales.credit_notes import refund_invoice
from engine.sales.credits import credit_invoice
from engine.sales.customers import (
    CHANNELS,
    EMAIL_PATTERN,
    create_customer,
    get_customer,
    list_customers,
    update_customer,
)
from engine.sales.errors import Conflict, NotFound, SalesError
from engine.sales.invoice_payments import handle_payment_succeeded, mark_invoice_paid
from engine.sales.invoice_status import mark_uncollectible, mark_uncollectible_many, void_invoice
from engine.sales.migration import migrate_subscriptions, preview_migration
from engine.sales.packs import (
    buy_pack,
    grant_credit,
    grant_units,
    handle_grant_requested,
    handle_invoice_paid,
    handle_top_up_requested,
    set_top_up,
)
from engine.sales.pausing import pause_subscription, resume_subscription
from engine.sales.progressive import bill_progressive, handle_usage_recorded
from engine.sales.queries import (
    active_subscription,
    current_usage,
    customer_plan,
    get_credit_note,
    get_invoice,
    invoice_count,
    list_credit_notes,
    list_invoices,
    subscription_invoices,
    usage_in_period,
)
from engine.sales.quotes import SubscriptionQuote, quote_subscription
from engine.sales.redemptions import coupon_redemption_count, coupon_redemptions
from engine.sales.render import render_invoice_html
from engine.sales.spend import spendable, spendable_many
from engine.sales.subscriptions import (
    change_subscription,
    create_subscription,
    get_subscription,
    list_subscriptions,
    reactivate_subscription,
)
from engine.sales.tokens import (
    burn_tokens,
    handle_token_burn,
    handle_tokens_granted,
    token_usage,
    tokens_spendable,
)
from engine.sales.usage import IngestResult, ingest_events, recorded_customers, validate_events
from engine.sales.wallet import announce_balance, announce_pack_balance
from engine.sales.wallet_levels import delete_low_balance, low_balance, set_low_balance

__all__ = [
    "CHANNELS",
    "EMAIL_PATTERN",
    "Cancellation",
    "Conflict",
    "IngestResult",
    "NotFound",
    "PublishedVersion",
    "RunReport",
    "SalesError",
    "ScanFilter",
    "SubscriptionQuote",
    "UsageAccrual",
    "active_subscription",
    "advance_clock",
    "announce_balance",
    "announce_pack_balance",
    "apply_coupon",
    "bill_progressive",
    "budget_left",
    "budget_status",
    "burn_tokens",
    "buy_pack",
    "cancel_subscription",
    "cancel_subscriptions",
    "catalog_for_version",
    "change_subscription",
    "check_budget",
    "coupon_redemption_count",
    "coupon_redemptions",
    "create_customer",
    "create_subscription",
    "credit_invoice",
    "current_usage",
    "customer_plan",
    "customers_by_id",
    "delete_budget",
    "delete_low_balance",
    "get_budget",
    "get_credit_note",
    "get_customer",
    "get_invoice",
    "get_subscription",
    "get_version",
    "grant_credit",
    "grant_units",
    "handle_charge_requested",
    "handle_grant_requested",
    "handle_invoice_paid",
    "handle_payment_succeeded",
    "handle_spend_changed",
    "handle_token_burn",
    "handle_tokens_granted",
    "handle_top_up_requested",
    "handle_usage_recorded",
    "ingest_events",
    "invoice_count",
    "invoices_by_id",
    "latest_version_for_plan",
    "list_credit_notes",
    "list_customers",
    "list_invoices",
    "list_subscriptions",
    "list_versions",
    "live_subscriptions",
    "low_balance",
    "mark_invoice_paid",
    "mark_uncollectible",
    "mark_uncollectible_many",
    "migrate_subscriptions",
    "next_due",
    "pause_subscription",
    "preview_migration",
    "process_batch",
    "publish_catalog",
    "quote_subscription",
    "reactivate_subscription",
    "recorded_customers",
    "refund_invoice",
    "render_invoice_html",
    "resume_subscription",
    "run_due_billing",
    "scan",
    "set_budget",
    "set_low_balance",
    "set_top_up",
    "spendable",
    "spendable_many",
    "spent",
    "subscription_invoices",
    "subscriptions_by_id",
    "token_usage",
    "tokens_spendable",
    "unbilled_usage",
    "update_customer",
    "usage_in_period",
    "validate_events",
    "void_invoice",
]
