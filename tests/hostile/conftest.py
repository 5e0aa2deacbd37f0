"""The migrated database the in-process `billing` commands of these tests use."""

from tests.cli.runner import database  # noqa: F401 (a fixture)
