"""What an operator does that changes state, written once for every door: the CLI
(`engine.cli`) calls these directly; the admin HTTP routes (`engine.api.routes.operators`,
`invoice_closing`, `books`) and the console (publish, rollback, the customer card's changes
through the ui/ pages) sit below engine.system and receive them as typed components bound in
`engine/system/api_operations.py` and `console_operations.py`. Here in engine.system because
several join subsystems (sales and payments, or sales and users' audit), and engine.system is
where subsystems are joined. Each function takes a session (the caller owns the transaction,
so a refusal writes nothing) and says who acts (`actor`), and raises `OperationError`
(engine/errors.py, so the doors catch it without importing engine.system) naming the field
for bad input. API keys and bank-file reconciliation have their shared functions in
`engine.api.keys` and `engine.payments` already. An issued invoice's credit, refund, void and
write-off (sales and payments in one transaction) are `invoice_closing`, the books' month
close `month_close`; the console's audited changes to a subscription, a wallet and a budget
(sales joined to users' audit) are `subscription_changes` and `wallet_changes`; the console's
publish of a checked draft (a new version joined to users' audit) is `draft_publishing`, and
`permitted` is the role check a console page makes first."""

from engine.errors import OperationError
from engine.system.operations.draft_publishing import publish_catalog_draft, publish_ruleset_draft
from engine.system.operations.migration import migrate_catalog
from engine.system.operations.publishing import PublishedItem, publish_documents, publish_texts, published_references
from engine.system.operations.rollback import Kind as RollbackKind
from engine.system.operations.rollback import rollback
from engine.system.operations.users import add_user, change_user, permitted

__all__ = [
    "OperationError",
    "PublishedItem",
    "RollbackKind",
    "add_user",
    "change_user",
    "migrate_catalog",
    "permitted",
    "publish_catalog_draft",
    "publish_documents",
    "publish_ruleset_draft",
    "publish_texts",
    "published_references",
    "rollback",
]
