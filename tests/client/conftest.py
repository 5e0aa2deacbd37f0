"""The client's tests run against a real engine: uvicorn on a free port, on a test clock
(the API tests' `running` fixture)."""

from tests.api.conftest import running

__all__ = ["running"]
