"""One module per command group; each has `register(subparsers)`."""

from engine.cli.commands import credits, ops, quote, serve, up, validate

MODULES = [validate, quote, up, serve, ops, credits]
