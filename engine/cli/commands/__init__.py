"""One module per command group; each has `register(subparsers)`."""

from engine.cli.commands import books, credits, operator, ops, quote, serve, up, validate, webhooks

MODULES = [validate, quote, up, serve, ops, operator, books, credits, webhooks]
