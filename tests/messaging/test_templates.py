"""Rendering: every channel and locale, the fallback, and the limits a template cannot pass."""

from __future__ import annotations

import os
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from engine.messaging import (
    TEMPLATE_NAMES,
    Renderer,
    RenderLimits,
    TemplateError,
    preview,
    sms_length,
)
from engine.messaging.samples import sample_customer, sample_data

from .conftest import CUSTOMER


@pytest.fixture
def tdir(tmp_path: Path) -> Path:
    """A scratch templates/ directory for hostile templates."""
    for sub in ("email/en", "sms/en", "in_app/en", "webhook"):
        (tmp_path / sub).mkdir(parents=True)
    return tmp_path


def write(root: Path, rel: str, text: str) -> None:
    (root / rel).write_text(text, encoding="utf-8")


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
@pytest.mark.parametrize("locale", ["en", "de"])
def test_every_shipped_template_renders_on_every_channel(name: str, locale: str) -> None:
    email = preview(name, "email", locale)
    assert email.locale == locale
    assert email.subject and "\n" not in email.subject
    assert email.html and email.html.lstrip().startswith("<!DOCTYPE html>")
    assert email.text and "{{" not in email.text
    sms = preview(name, "sms", locale)
    assert sms.text and sms.sms is not None and 1 <= sms.sms.segments <= 3
    in_app = preview(name, "in_app", locale)
    assert in_app.title and in_app.body
    assert in_app.action_url and in_app.action_url.startswith(("/", "https://"))
    hook = preview(name, "webhook", locale)
    assert isinstance(hook.payload, dict) and hook.payload


def test_email_content_and_locale_formatting() -> None:
    en = preview("payment_failed", "email", "en")
    assert en.subject == "Payment for invoice INV-2026-0042 failed"
    assert "€1,234.50" in (en.text or "")
    assert "Dec 3, 2026" in (en.text or "")
    de = preview("payment_failed", "email", "de")
    assert de.subject == "Zahlung für Rechnung INV-2026-0042 fehlgeschlagen"
    assert "1.234,50 €" in (de.text or "") and "03.12.2026" in (de.text or "")
    assert '<html lang="de">' in (de.html or "")


def test_unknown_locale_falls_back_to_language_then_english() -> None:
    assert preview("invoice_issued", "email", "de-AT").locale == "de"
    fr = preview("invoice_issued", "email", "fr-FR")
    assert fr.locale == "en" and fr.subject and fr.subject.startswith("Invoice ")


def test_html_is_autoescaped_but_text_is_not() -> None:
    data = sample_data("invoice_issued")
    customer = dict(CUSTOMER, name="<script>alert(1)</script> & Co")
    r = Renderer().render("invoice_issued", "email", data, "en", customer)
    assert "<script>" not in (r.html or "")
    assert "&lt;script&gt;" in (r.html or "")
    assert "<script>alert(1)</script> & Co" in (r.text or "")


def test_missing_variable_is_a_clear_error() -> None:
    with pytest.raises(TemplateError) as info:
        Renderer().render("payment_failed", "email", {"payment": {}}, "en", CUSTOMER)
    assert "payment_failed" in str(info.value) and "email" in str(info.value)
    assert "'invoice' is undefined" in str(info.value)


def test_strict_undefined_in_a_custom_template(tdir: Path) -> None:
    write(tdir, "sms/en/t.txt", "Hello {{ customer.nmae }}")
    with pytest.raises(TemplateError, match="undefined variable.*nmae"):
        Renderer(tdir).render("t", "sms", {}, "en", CUSTOMER)


@pytest.mark.parametrize("expr", [
    "{{ customer.__class__.__mro__ }}",
    "{{ ''.__class__.__subclasses__() }}",
    "{{ customer.items.__globals__ }}",
    "{{ customer.update({'id': 1}) }}",
    "{{ '{0.__class__}'.format(customer) }}",
])
def test_unsafe_attribute_access_is_blocked(tdir: Path, expr: str) -> None:
    write(tdir, "sms/en/t.txt", expr)
    with pytest.raises(TemplateError, match="not allowed|unsafe|undefined"):
        Renderer(tdir).render("t", "sms", {}, "en", CUSTOMER)


def test_templates_take_plain_data_only() -> None:
    class Invoice:  # stands in for an ORM object
        number = "X"

        def delete(self) -> None:
            raise AssertionError("a template must never reach this")

    with pytest.raises(TemplateError, match=r"plain dicts.*Invoice"):
        Renderer().render("invoice_issued", "email", {"invoice": Invoice()}, "en", CUSTOMER)


@pytest.mark.parametrize("bomb", [
    "{{ 'x' * 50000000 }}",
    "{{ ['x'] * 50000000 }}",
    "{% set ns = namespace(s='xxxxxxxxxxxxxxxx') %}{% for i in range(40) %}"
    "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
    "{% set ns = namespace(s='xxxxxxxxxxxxxxxx') %}{% for i in range(40) %}"
    "{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s }}",
    "{{ ('x' * 90000)|replace('x', 'x' * 90000) }}",
    "{{ 'x'|center(500000000) }}",
    "{{ 'x'.ljust(500000000) }}",
    "{{ '%500000000s'|format('x') }}",
    "{{ 9 ** 999999 }}",
    "{{ [1]|slice(100000000)|list|length }}",
    "{% for i in range(100000) %}{{ 'y' * 1000 }}{% endfor %}",
])
def test_size_bombs_are_stopped_quickly(tdir: Path, bomb: str) -> None:
    write(tdir, "sms/en/t.txt", bomb)
    started = time.monotonic()
    with pytest.raises(TemplateError, match="limit|too large|huge|longer"):
        Renderer(tdir).render("t", "sms", {}, "en", CUSTOMER)
    assert time.monotonic() - started < 2


def test_endless_loops_hit_the_time_limit(tdir: Path) -> None:
    write(tdir, "sms/en/t.txt",
          "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}x")
    renderer = Renderer(tdir, RenderLimits(max_seconds=0.3))
    started = time.thread_time()  # the budget is this thread's CPU time, whatever the load
    with pytest.raises(TemplateError, match="longer than 0.3 s"):
        renderer.render("t", "sms", {}, "en", CUSTOMER)
    assert time.thread_time() - started < 1.0


def test_output_cap(tdir: Path) -> None:
    write(tdir, "sms/en/t.txt", "{% for i in range(1000) %}{{ 'z' * 100 }}{% endfor %}")
    with pytest.raises(TemplateError, match="output is longer"):
        Renderer(tdir, RenderLimits(max_output=50_000)).render("t", "sms", {}, "en", CUSTOMER)


def test_a_failing_part_fails_the_whole_message(tdir: Path) -> None:
    # The subject renders, the HTML does not: no message at all.
    write(tdir, "email/en/t.txt", "{% block subject %}Hi{% endblock %}{% block text %}ok"
          "{% endblock %}")
    write(tdir, "email/en/t.html", "<p>{{ nope }}</p>")
    with pytest.raises(TemplateError, match="nope"):
        Renderer(tdir).render("t", "email", {}, "en", CUSTOMER)


def test_webhook_template_must_be_json(tdir: Path) -> None:
    write(tdir, "webhook/t.json", '{"name": {{ customer.name }}}')
    with pytest.raises(TemplateError, match="not valid JSON.*tojson"):
        Renderer(tdir).render("t", "webhook", {}, "en", CUSTOMER)
    write(tdir, "webhook/u.json", '{"name": {{ customer.name|tojson }}, "n": {{ n }}}')
    assert Renderer(tdir).render("u", "webhook", {"n": 3}, "en", CUSTOMER).payload == \
        {"name": "Ada Lovelace", "n": 3}


def test_in_app_action_url_must_be_safe(tdir: Path) -> None:
    write(tdir, "in_app/en/t.txt", "{% block title %}T{% endblock %}{% block body %}B"
          "{% endblock %}{% block action_url %}javascript:alert(1){% endblock %}")
    with pytest.raises(TemplateError, match="action_url"):
        Renderer(tdir).render("t", "in_app", {}, "en", CUSTOMER)


def test_missing_template_names_what_was_looked_for() -> None:
    with pytest.raises(TemplateError, match="no template.*email/en/nonexistent.txt"):
        Renderer().render("nonexistent", "email", {}, "en", CUSTOMER)


def test_money_and_dates_for_other_currencies() -> None:
    data = {"invoice": {"id": "i", "number": "N", "total": Decimal("123456"),
                        "currency": "JPY", "due_date": date(2026, 1, 5)}}
    r = Renderer().render("invoice_issued", "sms", data, "en", CUSTOMER)
    assert "¥123,456" in (r.text or "") and "Jan 5, 2026" in (r.text or "")
    data["invoice"]["currency"] = "KWD"
    r = Renderer().render("invoice_issued", "sms", data, "de", sample_customer("de"))
    assert "123.456,000 KWD" in (r.text or "")


@pytest.mark.parametrize(("text", "encoding", "units", "segments"), [
    ("", "GSM-7", 0, 0),
    ("a" * 160, "GSM-7", 160, 1),
    ("a" * 161, "GSM-7", 161, 2),
    ("a" * 306, "GSM-7", 306, 2),
    ("a" * 307, "GSM-7", 307, 3),
    ("€" * 80, "GSM-7", 160, 1),  # extension characters take two septets
    ("a" * 152 + "€" + "a" * 10, "GSM-7", 164, 2),  # an escape pair is not split
    ("ä" * 160, "GSM-7", 160, 1),  # in the basic table
    ("ć" * 70, "UCS-2", 70, 1),
    ("ć" * 71, "UCS-2", 71, 2),
    ("ć" * 134, "UCS-2", 134, 2),
    ("ć" * 135, "UCS-2", 135, 3),
    ("😀" * 35, "UCS-2", 70, 1),  # surrogate pairs count twice
    ("a" * 66 + "😀" + "a", "UCS-2", 69, 1),
    ("a" * 66 + "😀" + "a" * 3, "UCS-2", 71, 2),
])
def test_sms_segments(text: str, encoding: str, units: int, segments: int) -> None:
    length = sms_length(text)
    assert (length.encoding, length.units, length.segments) == (encoding, units, segments)


def test_too_long_sms_is_refused(tdir: Path) -> None:
    write(tdir, "sms/en/t.txt", "{{ 'ć' * 500 }}")
    with pytest.raises(TemplateError, match="segments"):
        Renderer(tdir).render("t", "sms", {}, "en", CUSTOMER)


def test_preview_all_names_have_samples() -> None:
    assert set(Renderer().names()) >= set(TEMPLATE_NAMES)
    assert preview("upgrade_offer", "in_app").title == "Upgrade to Pro"


def test_preview_of_an_unknown_template_is_a_clear_error() -> None:
    with pytest.raises(TemplateError, match="no sample data for template 'nope'"):
        preview("nope", "email")


def test_an_edited_template_takes_effect_without_a_restart(tdir: Path) -> None:
    """A templates directory of one's own (BILLING_TEMPLATES_DIR): edited while the system
    runs, the next message uses the new text."""
    renderer = Renderer(tdir)
    write(tdir, "sms/en/t.txt", "Hello {{ customer.name }}")
    assert renderer.render("t", "sms", {}, "en", CUSTOMER).text == f"Hello {CUSTOMER['name']}"
    write(tdir, "sms/en/t.txt", "Bye {{ customer.name }}")
    later = time.time() + 5  # a newer modification time, however coarse the file system's clock
    os.utime(tdir / "sms/en/t.txt", (later, later))
    assert renderer.render("t", "sms", {}, "en", CUSTOMER).text == f"Bye {CUSTOMER['name']}"
    assert renderer.reload


def test_the_shipped_templates_are_not_looked_at_again_on_every_render() -> None:
    """The package's own templates change with the code, not while a system runs: no stat of
    each template file per message."""
    assert not Renderer().reload and not Renderer().env.auto_reload
    assert Renderer(reload=True).env.auto_reload  # who wants it, asks
