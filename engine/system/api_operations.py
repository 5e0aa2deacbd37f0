"""The operator operations the HTTP routes call, bound here (engine.api.operations.ApiOperations):
they join subsystems, so the routes below engine.system receive them rather than import them."""

from __future__ import annotations

from engine.api.operations import ApiOperations
from engine.system import operations
from engine.system.operations import invoice_closing, month_close


def api_operations() -> ApiOperations:
    return ApiOperations(
        credit_invoice=invoice_closing.credit_invoice,
        refund_invoice=invoice_closing.refund_invoice,
        void_invoice=invoice_closing.void_invoice,
        mark_uncollectible=invoice_closing.mark_uncollectible,
        close_month=month_close.close_month,
        publish_texts=operations.publish_texts,
        rollback=operations.rollback,
        migrate_catalog=operations.migrate_catalog,
        add_user=operations.add_user,
        change_user=operations.change_user,
    )
