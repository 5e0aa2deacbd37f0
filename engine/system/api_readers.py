"""What the HTTP routes read of a subsystem their module does not import, bound here
(engine.api.context.ApiReaders)."""

from __future__ import annotations

from engine import dunning, sales
from engine.api.context import ApiReaders


def api_readers() -> ApiReaders:
    return ApiReaders(customer=sales.get_customer, dunning_state=dunning.get_state)
