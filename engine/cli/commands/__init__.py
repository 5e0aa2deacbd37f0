"""One module per command group; each has `register(subparsers)`."""

from engine.cli.commands import credits, operator, ops, quote, serve, up, validate, webhooks

MODULES = [validate, quote, up, serve, ops, operator, credits, webhooks]
