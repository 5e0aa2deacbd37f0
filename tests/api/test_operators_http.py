"""Every operator action that changes state has an admin-scoped HTTP door (issue 19): publish,
rollback, subscriptions moved to a new catalog version, console users. Each is refused to a
product key, and bad input names the field and writes nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from engine import sales, users
from tests.api.conftest import Running

ROOT = Path(__file__).resolve().parents[2]
SAAS = (ROOT / "catalogs/saas.yaml").read_text()
PRO_49 = 'amount: "49.00"'


def versions(running: Running) -> list[int]:
    with running.system.db.read_session() as s:
        return [v["version"] for v in sales.list_versions(s, "acme-analytics")]


def problem(r: httpx.Response, status: int, field: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    assert body["field"] == field, body
    return body


def publish_v2(admin: httpx.Client) -> dict[str, Any]:
    assert PRO_49 in SAAS
    r = admin.post("/v1/publish", json={"documents": [{"file": "saas.yaml", "text": SAAS.replace(
        PRO_49, 'amount: "59.00"', 1)}], "comment": "pro at 59"})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def test_publish_and_rollback_over_http_with_the_audit(running: Running) -> None:
    admin, product = running.client(running.admin), running.client(running.product)
    body = {"documents": [{"file": "saas.yaml", "text": SAAS.replace(PRO_49, 'amount: "59.00"', 1)}]}
    assert product.post("/v1/publish", json=body).status_code == 403
    assert publish_v2(admin)["published"] == [
        {"file": "saas.yaml", "kind": "catalog", "name": "acme-analytics", "version": 2, "created": True}]

    assert product.post("/v1/catalogs/acme-analytics/rollback", json={"to_version": 1, "why": "x"}).status_code == 403
    r = admin.post("/v1/catalogs/acme-analytics/rollback", json={"to_version": 1, "why": "too steep"})
    assert r.status_code == 201, r.text
    assert (r.json()["version"], r.json()["restored"]) == (3, 1)
    with running.system.db.read_session() as s:
        assert sales.get_version(s, "acme-analytics").document == sales.get_version(s, "acme-analytics", 1).document
        [entry] = users.list_audit(s, "acme-analytics")
    assert (entry["action"], entry["why"], entry["details"]["replaced"]) == ("rollback", "too steep", 2)
    assert entry["user"].startswith("api_key:")


def test_bad_publish_and_rollback_name_the_field_and_write_nothing(running: Running) -> None:
    admin = running.client(running.admin)
    broken = SAAS.replace(PRO_49, "amount: 49.5", 1)
    r = admin.post("/v1/publish", json={"documents": [
        {"file": "content.yaml", "text": (ROOT / "catalogs/content.yaml").read_text()},
        {"file": "saas.yaml", "text": broken}]})
    body = problem(r, 422, "documents")
    assert any(p.startswith("saas.yaml:") and "float" in p for p in body["problems"]), body
    problem(admin.post("/v1/publish", json={"documents": []}), 422, "documents")
    problem(admin.post("/v1/catalogs/acme-analytics/rollback", json={"to_version": 7, "why": "x"}), 404, "to_version")
    problem(admin.post("/v1/catalogs/acme-analytics/rollback", json={"to_version": 1, "why": "x"}), 409, "to_version")
    problem(admin.post("/v1/catalogs/acme-analytics/rollback", json={"to_version": 1, "why": "  "}), 422, "why")
    problem(admin.post("/v1/rulesets/nope/rollback", json={"to_version": 1, "why": "x"}), 404, "name")
    assert versions(running) == [1]
    with running.system.db.read_session() as s:
        assert [v["catalog"] for v in sales.list_versions(s)] == ["acme-analytics"]  # content.yaml not stored
        assert users.list_audit(s) == []


def test_subscriptions_move_to_a_new_catalog_version(running: Running) -> None:
    admin, product = running.client(running.admin), running.client(running.product)
    assert admin.post("/v1/customers", json={"id": "cus_m", "email": "m@example.com", "name": "M"}).status_code == 201
    sub = admin.post("/v1/subscriptions", json={"customer_id": "cus_m", "plan": "pro"}).json()
    publish_v2(admin)
    url = "/v1/catalogs/acme-analytics/migrations"
    assert product.post(url, json={}).status_code == 403
    problem(admin.post(url, json={"subscription_ids": [sub["id"], "sub_nope"]}), 404, "subscription_ids[1]")
    problem(admin.post(url, json={"version": 9}), 404, "version")
    problem(admin.post("/v1/catalogs/nope/migrations", json={}), 404, "catalog")
    problem(admin.post(url, json={"version": 0}), 422, "version")
    preview = admin.post(url, json={"dry_run": True}).json()
    [row] = preview["would_migrate"]
    assert (row["subscription_id"], row["to_version"]) == (sub["id"], 2)
    assert row["old_amount"] != row["new_amount"]
    def pending() -> Any:
        [found] = admin.get("/v1/customers/cus_m").json()["subscriptions"]
        return found["pending"]["catalog_version_id"]

    assert pending() is None  # the dry run, and the refused calls, moved nothing
    done = admin.post(url, json={}).json()
    assert [r["subscription_id"] for r in done["migrated"]] == [sub["id"]]
    assert pending() == row["to_version_id"]  # from the next period on


def test_console_users_over_http(running: Running) -> None:
    admin, product = running.client(running.admin), running.client(running.product)
    ada = {"name": "ada", "role": "editor", "password": "a long password"}
    assert product.post("/v1/users", json=ada).status_code == 403
    r = admin.post("/v1/users", json=ada)
    assert r.status_code == 201 and r.json()["role"] == "editor" and "password" not in r.text
    problem(admin.post("/v1/users", json=ada), 409, "name")
    problem(admin.post("/v1/users", json={**ada, "name": "bob", "password": "short"}), 422, "password")
    problem(admin.patch("/v1/users/ada", json={"role": "owner"}), 422, "role")
    problem(admin.patch("/v1/users/ada", json={}), 422, "body")
    problem(admin.patch("/v1/users/nobody", json={"role": "viewer"}), 404, "name")
    assert product.patch("/v1/users/ada", json={"disabled": True}).status_code == 403
    assert admin.patch("/v1/users/ada", json={"role": "publisher"}).json()["role"] == "publisher"
    with running.system.db.session() as s:
        assert users.authenticate(s, "ada", "a long password") == {"name": "ada", "role": "publisher"}
        assert [u["name"] for u in users.list_users(s)] == ["ada"]  # bob was refused
    assert admin.patch("/v1/users/ada", json={"disabled": True}).json()["disabled"] is True
    with running.system.db.session() as s:
        assert users.authenticate(s, "ada", "a long password") is None


def test_the_operator_routes_are_documented_for_admin_keys(running: Running) -> None:
    paths = running.client().get("/openapi.json").json()["paths"]
    for path, method in (("/v1/publish", "post"), ("/v1/catalogs/{name}/rollback", "post"),
                         ("/v1/rulesets/{name}/rollback", "post"), ("/v1/catalogs/{name}/migrations", "post"),
                         ("/v1/users", "post"), ("/v1/users/{name}", "patch"), ("/v1/api-keys", "post"),
                         ("/v1/api-keys/{key_id}", "delete"), ("/v1/reconciliation/imports", "post")):
        operation = paths[path][method]
        assert "403" in operation["responses"] and operation["summary"], (path, method)
