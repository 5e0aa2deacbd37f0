"""Why? over HTTP: the access check names its decision, plan-driven denials are logged, and
GET /v1/customers/{id}/decisions answers why a customer was denied or dunned."""

from __future__ import annotations

from engine import dunning
from tests.api.conftest import Running


def _usage(n: int) -> list[dict[str, object]]:
    return [{"id": f"evt_{i}", "type": "api.request", "customer_id": "cus_7", "time": "2026-11-01T10:00:00Z"}
            for i in range(n)]


def test_a_plan_denial_carries_its_decision_id_and_is_in_the_log(running: Running) -> None:
    admin, product = running.client(running.admin), running.client(running.product)
    admin.post("/v1/customers", json={"id": "cus_7", "email": "a@b.c", "name": "A"})
    admin.post("/v1/subscriptions", json={"customer_id": "cus_7", "plan": "free"})
    check = {"customer_id": "cus_7", "feature": "api"}

    granted = product.post("/v1/access/check", json=check).json()
    assert granted["allowed"] and granted["decision_id"] is None  # a plain grant writes nothing

    product.post("/v1/events", json=_usage(1000))
    denied = product.post("/v1/access/check", json=check).json()
    again = product.post("/v1/access/check", json=check).json()
    assert (denied["allowed"], denied["reason"]) == (False, "quota_exceeded")
    assert denied["decision_id"].startswith("dec_") and again["decision_id"].startswith("dec_")

    r = admin.get("/v1/customers/cus_7/decisions", params={"kind": "access"})
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    first = next(i for i in items if i["id"] == denied["decision_id"])
    assert first == {
        "id": denied["decision_id"], "time": first["time"], "kind": "access", "subject": "api",
        "outcome": "deny", "reason": "quota_exceeded", "rule": None, "event_id": None,
    }
    # Asked again: logged again (each use is in the log), under the id that check answered
    # with, or `<id>.1` when the same memoised decision answered it.
    ids = [i["id"] for i in items]
    assert len(ids) == 2 and denied["decision_id"] in ids
    assert again["decision_id"] in ids or f"{denied['decision_id']}.1" in ids


def test_decisions_say_why_a_customer_was_dunned_and_denied(running: Running) -> None:
    admin, product = running.client(running.admin), running.client(running.product)
    admin.post("/v1/customers", json={"id": "cus_8", "email": "a@b.c", "name": "A"})
    admin.post("/v1/subscriptions", json={"customer_id": "cus_8", "plan": "pro"})
    with running.system.db.session() as s:
        dunning.set_state(s, "cus_8", "suspended", reason="invoice overdue 14 days", now=running.system.clock.now())
    running.system.access.invalidate("cus_8")
    denied = product.post("/v1/access/check", json={"customer_id": "cus_8", "feature": "sso"}).json()
    assert denied["reason"] == "payment_overdue"

    items = admin.get("/v1/customers/cus_8/decisions").json()["items"]
    assert [(i["kind"], i["outcome"], i["reason"]) for i in items] == [
        ("access", "deny", "payment_overdue"),
        ("dunning", "suspended", "active -> suspended: invoice overdue 14 days"),
    ]
    only = admin.get("/v1/customers/cus_8/decisions", params={"kind": "dunning"}).json()["items"]
    assert [i["kind"] for i in only] == ["dunning"]


def test_decisions_bad_input_is_a_problem_naming_the_field(running: Running) -> None:
    admin = running.client(running.admin)
    r = admin.get("/v1/customers/nobody/decisions")
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["field"] == "customer_id"
    admin.post("/v1/customers", json={"id": "cus_9", "email": "a@b.c", "name": "A"})
    r = admin.get("/v1/customers/cus_9/decisions", params={"kind": "refund"})
    assert r.status_code == 422 and r.json()["field"] == "kind"
    r = running.client(running.product).get("/v1/customers/cus_9/decisions")
    assert r.status_code == 403
