"""What an operator does that changes state, written once for every door: the CLI
(`engine.cli`) and the admin HTTP routes (`engine.api.routes.operators`) both call these, and
the console's rollback too. Each function takes a session (the caller owns the transaction,
so a refusal writes nothing) and says who acts (`actor`), and raises `OperationError` naming
the field for bad input. API keys and bank-file reconciliation have their shared functions
in `engine.api.keys` and `engine.payments` already. An issued invoice's credit, refund, void and
write-off (sales and payments in one transaction) are `engine.operations.invoice_closing`; the
console's audited changes to a subscription, a wallet and a budget (sales joined to users'
audit) are `engine.operations.subscription_changes` and `engine.operations.wallet_changes`; the
console's publish of a checked draft (a new version joined to users' audit) is
`engine.operations.draft_publishing`, and `permitted` is the role check a console page makes first."""

from engine.operations.draft_publishing import publish_catalog_draft, publish_ruleset_draft
from engine.operations.errors import OperationError
from engine.operations.migration import migrate_catalog
from engine.operations.publishing import PublishedItem, publish_documents, publish_texts, published_references
from engine.operations.rollback import Kind as RollbackKind
from engine.operations.rollback import rollback
from engine.operations.users import add_user, change_user, permitted

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
