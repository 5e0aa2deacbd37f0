"""One module per command group; each has `register(subparsers)`."""

from engine.cli.commands import quote, up, validate

MODULES = [validate, quote, up]
