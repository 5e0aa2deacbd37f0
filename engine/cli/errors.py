from __future__ import annotations


class BadInput(Exception):
    """Bad input from the user: printed on stderr, exit code 1, nothing else printed."""
