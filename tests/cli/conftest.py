"""What the CLI tests share: the migrated database in-process commands use."""

from tests.cli.runner import database  # noqa: F401 (a fixture)
