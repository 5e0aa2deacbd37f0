"""One module per command group; each has `register(subparsers)`."""

from engine.cli.commands import books, ops, quote, serve, up, validate

MODULES = [validate, quote, up, serve, ops, books]
