"""Applying a coupon to a running subscription over HTTP (the door the console's operators use
too): redeemed from the next period on, never on the period already invoiced; a bad code, a
second coupon or another plan's coupon is refused naming `coupon` and changes nothing."""

from __future__ import annotations

from tests.api.conftest import Running


def _subscribe(running: Running, plan: str = "pro") -> dict:  # type: ignore[type-arg]
    with running.client(running.admin) as c:
        assert c.post("/v1/customers", json={"id": "cus_c", "email": "c@x.io", "name": "Coupon Co"}).status_code == 201
        r = c.post("/v1/subscriptions", json={"customer_id": "cus_c", "plan": plan, "quantity": 2, "trial_days": 0})
        assert r.status_code == 201, r.text
        return r.json()


def test_a_coupon_applies_from_the_next_period(running: Running) -> None:
    sub = _subscribe(running)
    with running.client(running.admin) as c:
        first = c.get("/v1/customers/cus_c/invoices").json()["items"]
        r = c.post(f"/v1/subscriptions/{sub['id']}/coupon", json={"coupon": "WINBACK30"})
        assert r.status_code == 200, r.text
        assert r.json()["coupon"] == "WINBACK30"
        # The invoiced period keeps its price: no new document, the first invoice unchanged.
        assert c.get("/v1/customers/cus_c/invoices").json()["items"] == first
        assert c.post("/v1/clock/advance", json={"to": "2026-12-01T10:00:00Z"}).status_code == 200
        invoices = c.get("/v1/customers/cus_c/invoices").json()["items"]
    nxt = next(i for i in invoices if i["period"]["start"] == "2026-12-01")
    # Pro: 49.00 + 2 seats x 10.00 = 69.00, 30 % off = 20.70
    assert nxt["subtotal"] == "69.00" and nxt["discount"] == "20.70"
    assert [d["source"] for d in nxt["discounts"]] == ["coupon:WINBACK30"]
    assert first[0]["discount"] == "0.00"


def test_bad_coupons_are_refused_naming_the_field(running: Running) -> None:
    sub = _subscribe(running, "free")
    with running.client(running.admin) as c:
        unknown = c.post(f"/v1/subscriptions/{sub['id']}/coupon", json={"coupon": "NOPE"})
        assert unknown.status_code == 404 and "coupon" in unknown.text
        other_plan = c.post(f"/v1/subscriptions/{sub['id']}/coupon", json={"coupon": "WINBACK30"})
        assert other_plan.status_code == 409 and "coupon" in other_plan.text
        empty = c.post(f"/v1/subscriptions/{sub['id']}/coupon", json={"coupon": ""})
        assert empty.status_code == 422 and "coupon" in empty.text
        assert c.post(f"/v1/subscriptions/{sub['id']}/coupon", json={"coupon": "FLAT10"}).status_code == 200
        again = c.post(f"/v1/subscriptions/{sub['id']}/coupon", json={"coupon": "FLAT10"})
        assert again.status_code == 409 and "already has coupon" in again.text
        assert c.get("/v1/customers/cus_c").json()["subscriptions"][0]["coupon"] == "FLAT10"
    with running.client(running.product) as c:
        assert c.post(f"/v1/subscriptions/{sub['id']}/coupon", json={"coupon": "FLAT10"}).status_code == 403
