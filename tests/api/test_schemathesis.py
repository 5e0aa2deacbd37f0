"""The OpenAPI contract and the server agree (issue 16): schemathesis, with every check it has,
over every operation, in all its phases (the schema's examples, coverage of each keyword's
edges, fuzzing, and stateful sequences along the links it infers), with valid and invalid data.

That means: no 5xx; every answer has a documented status, content type, headers and body;
every request the schema calls valid is accepted (or, where validity depends on what is
stored, answered with the documented 404 or 409); every request it calls invalid is refused;
a missing or wrong key is a 401; an unknown method is a 405 naming the allowed ones; a
created resource can be read, a deleted one cannot. (object_level_authorization runs too, but
needs several identities owning objects: here keys are scoped, not owners, so it has nothing
to compare.)

schemathesis' pytest plugin does not run under pytest 9, so its engine (what `st run` runs)
is driven here directly. To reproduce a finding against a server of your own:
`st run URL/openapi.json -c all -H 'Authorization: Bearer KEY' -n 10 -w 1 --seed 16`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis.checks import CHECKS
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, from_schema
from schemathesis.engine import events as st_events
from schemathesis.specs.openapi.formats import unregister_string_format

from engine.api.routes.operators import DOCUMENT_FORMAT
from engine.api.routes.product import MAX_PERIOD_DAYS, PERIOD_FORMAT
from engine.api.routes.reconciliation import BANK_FILE_FORMAT
from engine.api.routes.webhooks import URL_FORMAT
from tests.api.conftest import Running

pytestmark = pytest.mark.slow  # minutes: started first (tests/conftest.py)

# Examples per operation in the fuzzing and stateful phases (the coverage phase sends every
# edge case of every keyword whatever this says: 3,300 of the run's ~4,100 requests). Five
# fuzzes each of the 57 operations with valid and invalid data; ten took another ~55 s
# at load 20 (fuzzing and stateful requests are the slow ones: each may bill every
# subscription the run made) for random inputs beside the edges coverage already sends.
# Set SCHEMATHESIS_MAX_EXAMPLES to explore more.
MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "5"))
# Fixed, so that a run can be repeated; set SCHEMATHESIS_SEED to explore other inputs.
SEED = int(os.environ.get("SCHEMATHESIS_SEED", "16"))

# What a schema-valid request may get: accepted, or refused for what is stored rather than
# for its shape. 404: it names a customer, plan, coupon, metric, invoice, subscription, key
# or payment provider that does not exist (generated ids rarely do). 409: it clashes with
# state the run's earlier calls left (an id taken, an event id reused with another body, a
# clock already past `to`, an expired coupon, an ended subscription). 413: the body is over
# the 1,000,000 bytes the engine reads (README "Limits"), a bound JSON Schema cannot state
# (a batch of 10,000 valid events can be larger). Nothing else: not 422, and not 401/403,
# since every request carries an admin key.
ACCEPTED = ["2xx", 404, 409, 413]
# What a schema-violating request may get: refused as malformed (400), too large (413: a list
# longer than maxItems is also over 1,000,000 bytes, refused before it is parsed), of another
# media type (415) or invalid (422). Not a 404 or 409: what is invalid is refused before
# anything stored is looked at.
REFUSED = [400, 413, 415, 422]


@st.composite
def _periods(draw: st.DrawFn) -> str:
    """The quote's `date-interval` format: real days, END after START, at most 3,660 days,
    from 1970 to 2200-01-01 (the schema's description; JSON Schema cannot say it)."""
    start = draw(st.dates(date(1970, 1, 1), date(2199, 12, 31)))
    days = draw(st.integers(1, min(MAX_PERIOD_DAYS, (date(2200, 1, 1) - start).days)))
    return f"{start.isoformat()}/{(start + timedelta(days=days)).isoformat()}"


@st.composite
def _bank_files(draw: st.DrawFn) -> str:
    """A valid camt.053 statement of its own id (a repeat is a 200, a clash a 409) with no
    entries, in any version the engine reads: the `bank-file` format."""
    version = draw(st.integers(2, 13))
    sid = draw(st.from_regex(r"[A-Z0-9]{1,20}", fullmatch=True))
    return (f'<?xml version="1.0" encoding="UTF-8"?><Document xmlns="urn:iso:std:iso:20022:tech:xsd:'
            f'camt.053.001.{version:02d}"><BkToCstmrStmt><GrpHdr><MsgId>M</MsgId>'
            f"<CreDtTm>2026-11-01T09:00:00Z</CreDtTm></GrpHdr><Stmt><Id>{sid}</Id>"
            f"<Acct><Id><IBAN>CH9300762011623852957</IBAN></Id></Acct></Stmt></BkToCstmrStmt></Document>")


@st.composite
def _webhook_urls(draw: st.DrawFn) -> str:
    """The `webhook-url` format: https to a public address (an IP literal: no DNS needed)."""
    path = draw(st.from_regex(r"[a-z0-9/_-]{0,40}", fullmatch=True))
    return f"https://93.184.215.14/{path}"


@st.composite
def _documents(draw: st.DrawFn) -> str:
    """A valid catalog of its own name and plan (a plan id another catalog owns is a 409):
    the `billing-document` format `POST /v1/publish` takes."""
    tag = draw(st.from_regex(r"[a-z][a-z0-9]{0,11}", fullmatch=True))
    interval = draw(st.sampled_from(["month", "year"]))
    return f"catalog: fuzz-{tag}\ncurrency: USD\nplans:\n  fuzz{tag}:\n    name: Fuzz\n    interval: {interval}\n    prices: []\n"


@pytest.fixture
def period_format() -> Iterator[None]:
    # schemathesis keeps custom formats in a registry of its own: registered for this test only.
    schemathesis.openapi.format(PERIOD_FORMAT, _periods())
    schemathesis.openapi.format(BANK_FILE_FORMAT, _bank_files())
    schemathesis.openapi.format(URL_FORMAT, _webhook_urls())
    schemathesis.openapi.format(DOCUMENT_FORMAT, _documents())
    yield
    unregister_string_format(DOCUMENT_FORMAT)
    unregister_string_format(PERIOD_FORMAT)
    unregister_string_format(BANK_FILE_FORMAT)
    unregister_string_format(URL_FORMAT)


def _config(running: Running) -> SchemathesisConfig:
    return SchemathesisConfig.from_dict({
        "seed": SEED,
        "base-url": running.url,
        "headers": {"Authorization": f"Bearer {running.admin}"},
        "workers": 1,  # the suite shares two cores
        # A test-clock advance may bill three years of cycles in one call: on a loaded CI
        # machine that outlasts schemathesis's 10 s default; speed is the benchmarks' business.
        "request-timeout": 120,
        "generation": {"mode": "all", "max-examples": MAX_EXAMPLES},
        "checks": {
            "enabled": True,  # every check schemathesis has (schemathesis.checks.CHECKS)
            "positive_data_acceptance": {"expected-statuses": ACCEPTED},
            "negative_data_rejection": {"expected-statuses": REFUSED},
        },
        "phases": {
            "examples": {"enabled": True},
            "coverage": {"enabled": True},
            "fuzzing": {"enabled": True},
            "stateful": {"enabled": True, "max-steps": 50},
        },
    })


def _findings(events: Any) -> tuple[list[str], set[str], set[str]]:
    """What went wrong, which operations ran and which checks ran, from the engine's events."""
    findings: list[str] = []
    operations: set[str] = set()
    checks: set[str] = set()
    for event in events:
        if isinstance(event, st_events.ScenarioFinished):
            if event.phase == "fuzzing" and event.label:
                operations.add(event.label)
            for case_id, nodes in event.recorder.checks.items():
                for node in nodes:
                    checks.add(node.name)
                    if node.status == Status.FAILURE and node.failure_info is not None:
                        findings.append(_describe(event, case_id, node.failure_info))
        elif isinstance(event, st_events.NonFatalError):
            findings.append(f"[{event.phase}] {event.label}: error {event.info.format()}")
        elif isinstance(event, st_events.FatalError):
            findings.append(f"fatal: {event.exception!r}")
        elif isinstance(event, st_events.EngineFinished):
            findings.extend(f"after run: {failure}" for failure in event.failures)
    return findings, operations, checks


def _describe(event: st_events.ScenarioFinished, case_id: str, info: Any) -> str:
    failure = info.failure
    interaction = event.recorder.interactions.get(failure.case_id or case_id)
    answer = ""
    if interaction is not None and interaction.response is not None:
        answer = f"\n-> {interaction.response.status_code} {interaction.response.content[:300]!r}"
    return f"[{event.phase}] {failure.operation}: {failure.title}: {failure.message}\n{info.code_sample}{answer}"


@pytest.mark.usefixtures("period_format")
def test_the_api_and_its_openapi_contract_agree(running: Running) -> None:
    # The endpoints the run registers are public https URLs: their deliveries are answered
    # here, never sent out of the machine.
    assert running.system.webhooks is not None
    running.system.webhooks.client = httpx.Client(transport=httpx.MockTransport(lambda _: httpx.Response(200)))
    admin = running.client(running.admin)
    admin.post("/v1/customers", json={"id": "cus_42", "email": "a@b.c", "name": "A"})
    admin.post("/v1/subscriptions", json={"customer_id": "cus_42", "plan": "pro"})
    schema = schemathesis.openapi.from_url(f"{running.url}/openapi.json", config=_config(running))
    findings, operations, checks = _findings(from_schema(schema).execute())

    assert findings == [], "\n\n".join(dict.fromkeys(findings))
    paths = running.client().get("/openapi.json").json()["paths"]
    every = {f"{method.upper()} {path}" for path, item in paths.items() for method in item}
    assert operations == every and len(every) >= 25, sorted(every - operations)
    # Every check schemathesis registers ran (each passes on a response it does not apply to).
    assert checks == {check.__name__ for check in CHECKS.get_all()}, sorted(checks)
