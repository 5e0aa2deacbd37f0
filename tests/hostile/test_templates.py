"""Hostile templates: every render (messages, invoice HTML, the console's previews) runs in one
limited sandbox that caps the work itself, before it is done: `*`, `**`, `~`, `%`, ranges,
joins, block captures and the filters that multiply size, under one time and output limit."""

from __future__ import annotations

import gc
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.messaging.templates import Renderer, TemplateError
from engine.sandbox import LimitedSandbox, RenderBudget, RenderLimitError, RenderLimits
from tests.hostile.bounds import bounded

CUSTOMER = {"name": "Ada", "email": "ada@example.com"}

# Each of these allocated hundreds of MB to GBs, or ran for seconds to minutes, before.
BOMBS = [
    "{{ 'x' * 50000000 }}",
    "{{ [[1]*100000]*100000 }}",
    "{% set a = [[1]*100000] %}{{ (a * 100000)|length }}",
    "{{ [[1]*100]*1000|sum(start=[])|length }}",
    "{{ range(100000)|join('x' * 100000) }}",
    "{{ ('\\n' * 99999)|indent(99999) }}",
    "{{ ('\\t' * 99999).expandtabs(99999) }}",
    "{% set a = ['x' * 99999] %}{{ (a * 99999)|join }}",
    "{% set x %}{% for i in range(100000) %}{{ 'y' * 99999 }}{% endfor %}{% endset %}{{ x|length }}",
    "{% macro m() %}{% for i in range(100000) %}{{ 'y' * 99999 }}{% endfor %}{% endmacro %}{{ m()|length }}",
    "{% filter upper %}{% for i in range(100000) %}{{ 'y' * 99999 }}{% endfor %}{% endfilter %}",
    "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
    "{{ 'abc'.translate({97: 'x' * 99999}) * 1 }}",
    "{% set d = {'a': 'x' * 90000} %}{{ [d] * 100 }}",
]


def _render(directory: Path) -> str:
    try:
        return "rendered " + str(len(Renderer(directory).render("t", "sms", {}, "en", CUSTOMER).text))
    except TemplateError as exc:
        return str(exc)


@pytest.mark.parametrize("bomb", BOMBS)
def test_a_message_template_bomb_is_refused_before_it_costs(tmp_path: Path, bomb: str) -> None:
    (tmp_path / "sms/en").mkdir(parents=True)
    (tmp_path / "sms/en/t.txt").write_text(bomb)
    outcome = bounded(_render, tmp_path, seconds=5, memory_mb=200)
    assert outcome.error is None, outcome.error
    assert outcome.value.startswith("template 't' (sms): not allowed"), outcome.value
    # The sandbox stops it at 1 s of its own time. What it cost is the child's CPU, not the wall
    # clock: at a load of 20 the same refusal took 3.5 s of wall time in CI.
    assert outcome.cpu_seconds < 3, outcome


def _invoice_html(root: Path) -> str:
    """One invoice in a fresh SQLite database, rendered with the template under root/invoice."""
    from datetime import UTC, datetime

    from engine.clock import TestClock
    from engine.sales import create_customer, create_subscription, list_invoices, publish_catalog, render_invoice_html
    from engine.sandbox import RenderLimitError
    from engine.store import Database
    from tests.sales.conftest import make_testco

    clock = TestClock(datetime(2026, 1, 1, tzinfo=UTC))
    db = Database(f"sqlite:///{root}/billing.db")
    db.migrate()
    with db.session() as s:
        publish_catalog(s, make_testco(), "tester", "v1", clock=clock)
        create_customer(s, {"id": "c1", "name": "<b>Ada</b>"}, clock=clock)
        create_subscription(s, "c1", "plus", clock=clock, trial_days=0)
        invoice_id = list_invoices(s, "c1")["items"][0]["id"]
        try:
            return render_invoice_html(s, invoice_id, templates_dir=root)
        except RenderLimitError as exc:
            return f"refused: {exc}"


@pytest.mark.parametrize("bomb", [
    "{{ 'x' * 50000000 }}",
    "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
    "{% for i in range(100000) %}{{ 'y' * 99999 }}{% endfor %}",
])
def test_an_invoice_template_renders_under_the_same_limits(tmp_path: Path, bomb: str) -> None:
    (tmp_path / "invoice").mkdir()
    (tmp_path / "invoice/invoice.html").write_text(f"<p>{{{{ customer.name }}}}</p>{bomb}")
    outcome = bounded(_invoice_html, tmp_path, seconds=15, memory_mb=300)
    assert outcome.error is None, outcome.error
    assert outcome.value.startswith("refused: "), outcome.value[:200]


def test_the_shipped_invoice_template_still_renders_escaped(tmp_path: Path) -> None:
    shipped = Path(__file__).resolve().parents[2] / "templates"
    (tmp_path / "invoice").mkdir()
    (tmp_path / "invoice/invoice.html").write_text((shipped / "invoice/invoice.html").read_text())
    outcome = bounded(_invoice_html, tmp_path, seconds=15, memory_mb=300)
    assert outcome.error is None, outcome.error
    assert "&lt;b&gt;Ada&lt;/b&gt;" in outcome.value and "Plus base fee" in outcome.value


_PARTS = st.sampled_from([
    "'x' * 99999", "[1] * 99999", "range(99999)", "[[1] * 999] * 999", "'ab'", "99999", "9 ** 99",
    "('y' * 999).split('y')", "[1, 2]",
])
_OPS = st.sampled_from([" * ", " + ", " ~ ", " % ", "|join(", "|indent(", "|replace('x', ", "|string ~ ",
                        "|list + ", "|batch(", "|center("])


def _expression(parts: list[str], ops: list[str]) -> str:
    out = parts[0]
    for op, part in zip(ops, parts[1:], strict=False):
        out = f"({out}{op}{part}))" if op.endswith("(") else f"({out}{op}{part})"
    return "{{ " + out + " }}"


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(_PARTS, min_size=2, max_size=4), st.lists(_OPS, min_size=3, max_size=3))
def test_any_expression_is_answered_within_bounds(tmp_path_factory: pytest.TempPathFactory, parts: list[str],
                                                  ops: list[str]) -> None:
    directory = tmp_path_factory.mktemp("t")
    (directory / "sms/en").mkdir(parents=True)
    (directory / "sms/en/t.txt").write_text(_expression(parts, ops))
    outcome = bounded(_render, directory, seconds=5, memory_mb=200)
    assert outcome.error is None, outcome.error


def test_the_collectors_time_is_not_the_templates() -> None:
    """A full garbage collection on the rendering thread (a long-lived worker's large heap)
    does not count against the template's CPU budget; the template's own steps still do."""
    heap = [[i] for i in range(1_000_000)]  # a large heap: a full collection takes a while
    started = time.thread_time()
    gc.collect()
    took = time.thread_time() - started
    template = LimitedSandbox().from_string("{% for i in range(3) %}{{ i }}{% endfor %}")
    with RenderBudget(RenderLimits(max_seconds=took / 4)):
        gc.collect()  # housekeeping on the render's thread, four times the budget
        assert template.render() == "012"
    endless = LimitedSandbox().from_string("{% for a in range(100000) %}{% for b in range(100000) %}"
                                           "{% endfor %}{% endfor %}")
    with RenderBudget(RenderLimits(max_seconds=0.05)), pytest.raises(RenderLimitError):
        endless.render()
    assert len(heap) == 1_000_000
