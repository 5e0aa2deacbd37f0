"""What access reads of sales and dunning, bound here: engine.access receives these typed
readers (engine.access.readers) and imports neither subsystem."""

from __future__ import annotations

from sqlalchemy.orm import Session

from engine import dunning, sales
from engine.access import AccessReaders, CustomerInputs
from engine.sales.customers import customer_to_dict, load_customer


def customer_inputs(session: Session, customer_id: str) -> CustomerInputs | None:
    """The customer, its dunning state and its live plan, read in `session`."""
    try:
        # Kept referenced while loading: the session's identity map is weak, and
        # `customer_plan` looks the same row up again (a second query if it was dropped).
        row = load_customer(session, customer_id)
    except sales.NotFound:
        return None
    customer = customer_to_dict(row)
    return CustomerInputs(customer, dunning.get_state(session, customer_id), sales.customer_plan(session, customer_id))


def access_readers() -> AccessReaders:
    """The sales and dunning queries an access snapshot is made of."""
    return AccessReaders(
        customer_inputs=customer_inputs,
        usage_in_period=sales.usage_in_period,
        spendable=sales.spendable_many,
        budget_left=sales.budget_left,
        recorded_customers=sales.recorded_customers,
    )
