"""One module per command group; each has `register(subparsers)`."""

from engine.cli.commands import quote, validate

MODULES = [validate, quote]
