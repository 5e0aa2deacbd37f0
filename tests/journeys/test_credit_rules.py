"""A rule's `grant_credit` action (issue 20: promotional grants from a rule), over HTTP on the
shared test clock, ending with the ledger checker. The operator publishes a catalog with a
promotional grant (`welcome`: 10.00, priority 10) and a ruleset granting it when a Basic
subscription is created (`POST /v1/publish`): the customer's wallet holds it (source `rule`),
it pays the 5.95 renewal before the card, once, and the rule's request delivered again grants
nothing more. A ruleset naming a grant the catalog does not have is refused, naming the line and
field. `billing publish` checks a ruleset against the same published catalogs: it publishes one
naming the grant of a catalog published over HTTP, and refuses an unknown grant. Hand-computed for a DE customer (19 %): Basic 5.00 + 0.95 = 5.95."""

from __future__ import annotations

import secrets
import time
from decimal import Decimal
from pathlib import Path

from tests.journeys.harness import Engine, money, redeliver
from tests.journeys.test_credits import wallet
from tests.journeys.test_journeys import CARD_OK, card

D = Decimal

CATALOG = """\
catalog: credit-rules-{tag}
currency: USD
taxes: {{DE: 19}}
metrics: {{}}
plans:
  basic-{tag}:
    name: Basic
    interval: month
    prices:
      - {{id: base, name: Platform, model: flat, amount: "5.00"}}
credits:
  grants:
    welcome-{tag}: {{name: Welcome credit, amount: "10.00", priority: 10, rollover: all}}
"""

RULES = """\
ruleset: welcome-{tag}
rules:
  - id: welcome-credit
    on: subscription.created
    when: {{subscription.plan: basic-{tag}}}
    then:
      - grant_credit: {{grant: {grant}, reason: welcome}}
"""


def test_a_rule_grants_a_catalog_grant_once(engine: Engine, tmp_path: Path) -> None:
    tag = secrets.token_hex(3)
    catalog = {"file": "credit-rules.yaml", "text": CATALOG.format(tag=tag)}
    bad = {"file": "welcome.yaml", "text": RULES.format(tag=tag, grant="nothing-here")}
    r = engine.admin.post("/v1/publish", json={"documents": [catalog, bad]})
    assert r.status_code == 422, r.text
    [problem] = r.json().get("problems") or [r.json()["detail"]]
    assert (
        problem.startswith(
            "welcome.yaml:7: rules[0].then[0].grant_credit.grant: unknown credit grant 'nothing-here'; known: "
        )
        and f"welcome-{tag}" in problem
    ), problem
    good = {"file": "welcome.yaml", "text": RULES.format(tag=tag, grant=f"welcome-{tag}")}
    engine.post("/v1/publish", {"documents": [catalog, good]}, status=201)
    # Every process reloads the published rules each BILLING_RULES_REFRESH_SECONDS (1 s here).
    time.sleep(3)

    cid = engine.customer("credit_rule")
    engine.subscribe(cid, f"basic-{tag}", payment_method=card(CARD_OK))
    engine.settle()
    [g] = wallet(engine, cid)["grants"]
    assert (g["source"], g["source_ref"], g["amount"], g["remaining"], g["reason"]) == (
        "rule",
        f"welcome-{tag}",
        "10.00",
        "10.00",
        "welcome",
    )
    redeliver(engine, cid, ("credits.grant_requested", "subscription.created"))
    assert [x["id"] for x in wallet(engine, cid)["grants"]] == [g["id"]]

    engine.advance("31d")  # the renewal, 5.95, paid by the rule's credit before the card
    renewal = next(i for i in engine.invoices(cid) if i["reason"] == "cycle")
    assert (money(renewal["credit_applied"]), renewal["status"]) == (D("5.95"), "paid")
    assert wallet(engine, cid)["balances"][0]["balance"] == "4.05"


def test_the_cli_publishes_a_ruleset_naming_a_grant_published_over_http(engine: Engine, tmp_path: Path) -> None:
    """`billing publish` checks a ruleset against what the engine's database has published (as
    `POST /v1/publish` does), not the example catalogs of the directory it runs in: the grant of
    a catalog published over HTTP may be named; an unknown one is refused (file, line, field;
    exit 1; nothing stored) and the rule the CLI published grants the credit."""
    tag = secrets.token_hex(3)
    engine.post(
        "/v1/publish", {"documents": [{"file": "credit-rules.yaml", "text": CATALOG.format(tag=tag)}]}, status=201
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text(RULES.format(tag=tag, grant="nothing-here"))
    refused = engine.billing("publish", str(bad))
    assert refused.returncode == 1
    assert f"{bad}:7: rules[0].then[0].grant_credit.grant: unknown credit grant 'nothing-here'; known: " in (
        refused.stderr
    ), refused.stderr

    good = tmp_path / "welcome.yaml"
    good.write_text(RULES.format(tag=tag, grant=f"welcome-{tag}"))
    done = engine.billing("publish", str(good), "--comment", "welcome credit")
    assert done.returncode == 0, done.stderr
    # Version 1: the refused call stored nothing.
    assert done.stdout.strip() == f"{good}: published ruleset welcome-{tag} version 1"
    time.sleep(3)  # every process reloads the published rules each second here

    cid = engine.customer("cli_rule")
    engine.subscribe(cid, f"basic-{tag}", payment_method=card(CARD_OK))
    engine.settle()
    [g] = wallet(engine, cid)["grants"]
    assert (g["source"], g["source_ref"], g["amount"]) == ("rule", f"welcome-{tag}", "10.00")
