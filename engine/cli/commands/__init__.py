"""One module per command group; each has `register(subparsers)`, called in the order of
MODULES (the order `billing --help` lists the commands in)."""

from engine.cli.commands import (
    books,
    credits,
    lint,
    operator,
    processes,
    quote,
    reconciliation,
    serve,
    simulate,
    templates,
    up,
    users,
    validate,
    webhooks,
)

MODULES = [
    validate,
    quote,
    up,
    serve,
    processes,
    reconciliation,
    templates,
    users,
    lint,
    simulate,
    operator,
    books,
    credits,
    webhooks,
]
