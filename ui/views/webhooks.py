"""The product's event webhooks: register an endpoint, read its delivery log, replay one
delivery or a time range (docs/webhooks.md). Changes need the publisher role."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd
import streamlit as st

from engine import webhooks
from engine.config import Settings
from engine.store import Database
from engine.system.assembly import webhooks_policy
from views.common import clock, need

# Bad input names the field and writes nothing: shown as a message where it happened.
_REFUSED = (webhooks.PatternError, webhooks.UrlError, webhooks.NotFound, ValueError)


def render(db: Database, user: dict[str, Any]) -> None:
    st.header("Webhooks")
    listing = st.container()  # filled after the form: an endpoint registered in this run is listed at once
    if need(user, "publish", "Registering endpoints and replaying deliveries"):
        try:
            _register(db)
        except _REFUSED as exc:
            st.error(str(exc).strip("'\""))
    with db.read_session() as s:
        endpoints = [e.public() for e in webhooks.list_endpoints(s)]
    with listing:
        if endpoints:
            st.dataframe(pd.DataFrame(endpoints), hide_index=True, width="stretch")
        else:
            st.write("No endpoint registered yet.")
    if endpoints:
        try:
            _log(db, [str(e["id"]) for e in endpoints], can_replay=user["role"] == "publisher")
        except _REFUSED as exc:
            st.error(str(exc).strip("'\""))


def _register(db: Database) -> None:
    with st.form("webhooks_register"):
        url = st.text_input("URL (https)", key="webhooks_url")
        events = st.multiselect("Event types", list(webhooks.PATTERNS), key="webhooks_events")
        description = st.text_input("Description", key="webhooks_description")
        if not st.form_submit_button("Register", key="webhooks_register_submit"):
            return
    with db.session() as s:
        made = webhooks.create_endpoint(s, url, events, now=clock().now(),
                                        policy=webhooks_policy(Settings()), description=description)
    st.success(f"Registered {made.id}. Its signing secret, shown once: {made.secret}")


def _log(db: Database, ids: list[str], *, can_replay: bool) -> None:
    st.subheader("Delivery log")
    endpoint = st.selectbox("Endpoint", ids, key="webhooks_endpoint")
    with db.read_session() as s:
        log = webhooks.list_deliveries(s, endpoint, limit=200)
    if log:
        columns = ["id", "status", "attempts", "response_code", "latency_ms", "event_type", "event_id",
                   "customer_id", "created_at", "next_attempt_at", "last_error", "replay_of"]
        st.dataframe(pd.DataFrame(log)[columns], hide_index=True, width="stretch")
    else:
        st.write("No delivery yet.")
    if not can_replay:
        return
    delivery = st.text_input("Delivery id to replay", key="webhooks_delivery")
    if st.button("Replay delivery", key="webhooks_replay"):
        with db.session() as s:
            made = webhooks.replay_delivery(s, delivery.strip(), now=clock().now())
        st.success(f"Replaying {delivery} as {made['id']}.")
    start = st.text_input("From (ISO time)", key="webhooks_from")
    end = st.text_input("To (ISO time)", key="webhooks_to")
    if st.button("Replay the range", key="webhooks_replay_range"):
        items = _replay_range(db, endpoint, start, end)
        st.success(f"Replaying {len(items)} deliveries.")


def _replay_range(db: Database, endpoint: str, start: str, end: str) -> list[dict[str, Any]]:
    times = []
    for name, text in (("From", start), ("To", end)):
        try:
            value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{name}: {text!r} is not an ISO time such as 2026-11-01T00:00:00Z") from None
        times.append(value if value.tzinfo else value.replace(tzinfo=UTC))
    if times[1] <= times[0]:
        raise ValueError(f"To: {end} is not after From {start}")
    with db.session() as s:
        return webhooks.replay_range(s, endpoint, times[0], times[1], now=clock().now())
