"""`billing publish` checks a ruleset's references (plans, grants, ...) against what is
published in the database it points at (BILLING_DATABASE_URL), as `POST /v1/publish` does,
not against the example catalogs of the directory it runs in: a ruleset naming the grant of a
catalog published earlier is published; one naming a grant nobody published is refused, naming
file, line and field, and nothing of that call is stored. Run from the checkout, whose
`catalogs/` have no such grant (the CLI used to check against those)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.cli.runner import invoke

ROOT = Path(__file__).resolve().parents[2]

CATALOG = """\
catalog: {name}
currency: USD
taxes: {{DE: 19}}
metrics: {{}}
plans:
  basic-{name}:
    name: Basic
    interval: month
    prices:
      - {{id: base, name: Platform, model: flat, amount: "5.00"}}
credits:
  grants:
    welcome-{name}: {{name: Welcome credit, amount: "10.00", priority: 10, rollover: all}}
"""

RULES = """\
ruleset: welcome
rules:
  - id: welcome-credit
    on: subscription.created
    when: {{subscription.plan: {plan}}}
    then:
      - grant_credit: {{grant: {grant}, reason: welcome}}
"""


def billing(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """`billing ARGV` from the checkout (its catalogs/ beside it) on a database of this test."""
    env = {**os.environ, "BILLING_DATABASE_URL": f"sqlite:///{tmp_path}/billing.db"}
    return invoke(*argv, env=env, cwd=ROOT)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_ruleset_may_name_a_grant_of_a_catalog_published_before(tmp_path: Path) -> None:
    catalog = write(tmp_path, "promo.yaml", CATALOG.format(name="promo"))
    done = billing(tmp_path, "publish", str(catalog))
    assert done.returncode == 0, done.stderr

    rules = write(tmp_path, "welcome.yaml", RULES.format(plan="basic-promo", grant="welcome-promo"))
    done = billing(tmp_path, "publish", str(rules), "--comment", "welcome credit")
    assert done.returncode == 0, done.stderr
    assert f"{rules}: published ruleset welcome version 1" in done.stdout


def test_a_ruleset_naming_a_grant_nobody_published_is_refused_and_nothing_is_stored(tmp_path: Path) -> None:
    promo = write(tmp_path, "promo.yaml", CATALOG.format(name="promo"))
    assert billing(tmp_path, "publish", str(promo)).returncode == 0
    other = write(tmp_path, "other.yaml", CATALOG.format(name="other"))
    rules = write(tmp_path, "welcome.yaml", RULES.format(plan="basic-promo", grant="nothing-here"))

    refused = billing(tmp_path, "publish", str(other), str(rules))
    assert refused.returncode == 1
    assert refused.stdout == ""
    assert f"{rules}:7: rules[0].then[0].grant_credit.grant: unknown credit grant 'nothing-here'; known: " in (
        refused.stderr
    ), refused.stderr

    # Nothing of the refused call was stored: the catalog given with it is new the next time.
    done = billing(tmp_path, "publish", str(other))
    assert done.returncode == 0, done.stderr
    assert f"{other}: published catalog other version 1" in done.stdout


def test_the_example_catalogs_beside_it_are_not_what_a_ruleset_may_name(tmp_path: Path) -> None:
    """catalogs/saas.yaml (in the directory the CLI runs in) has the plan `pro` and the grant
    `welcome`; this database published only `promo`, so a ruleset naming them is refused, as
    over HTTP (it was published from the checkout)."""
    promo = write(tmp_path, "promo.yaml", CATALOG.format(name="promo"))
    assert billing(tmp_path, "publish", str(promo)).returncode == 0
    saas = (ROOT / "catalogs/saas.yaml").read_text()
    assert "\n  pro:\n" in saas and "\n    welcome:" in saas
    rules = write(tmp_path, "welcome.yaml", RULES.format(plan="pro", grant="welcome"))

    refused = billing(tmp_path, "publish", str(rules))
    assert refused.returncode == 1
    assert f"{rules}:5: rules[0].when: unknown plan 'pro'; known: basic-promo" in refused.stderr, refused.stderr
    assert f"{rules}:7: rules[0].then[0].grant_credit.grant: unknown credit grant 'welcome'; known: welcome-promo" in (
        refused.stderr
    ), refused.stderr
