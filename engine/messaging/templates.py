"""Rendering messages from templates/ per channel and locale.

Layout (NAME is e.g. `payment_failed`, LOCALE e.g. `de`):

    templates/email/LOCALE/NAME.txt     blocks `subject` and `text`
    templates/email/LOCALE/NAME.html    the HTML body (autoescaped; may extend _layout.html)
    templates/sms/LOCALE/NAME.txt       the SMS text
    templates/in_app/LOCALE/NAME.txt    blocks `title`, `body` and (optional) `action_url`
    templates/webhook/NAME.json         the JSON `data` of the webhook (locale-free)

A locale falls back to its language (`de-AT` -> `de`) and then to English. Templates see
plain data only (dicts, lists, scalars), the customer, `locale`, and the filters `money`
and `date`. Every render runs under `RenderLimits`; any failure raises `TemplateError` with
the template's name, channel and the reason, and nothing of it is used.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import jinja2
import jinja2.debug
from jinja2 import FileSystemLoader, StrictUndefined, pass_context
from jinja2.runtime import Context

from engine.messaging.sandbox import (
    LimitedSandbox,
    RenderBudget,
    RenderLimits,
    collect,
    guard_filter,
    plain_data,
)
from engine.messaging.sms import SmsLength, sms_length
from engine.money import minor_units

CHANNELS = ("email", "sms", "in_app", "webhook")
DEFAULT_LOCALE = "en"

# The templates the engine ships (rules name them in `notify: {template: ...}`).
TEMPLATE_NAMES = (
    "invoice_issued",
    "payment_failed",
    "payment_succeeded",
    "payment_retry_scheduled",
    "payment_method_needed",
    "trial_ending",
    "quota_warning",
    "quota_reached",
    "upgrade_offer",
    "account_warning",
    "account_suspended",
    "subscription_cancelled",
    "digest",
)

MAX_SMS_SEGMENTS = 6


class TemplateError(Exception):
    """A message could not be rendered. `str()` says which template, channel and why."""

    def __init__(self, template: str, channel: str, reason: str) -> None:
        super().__init__(f"template {template!r} ({channel}): {reason}")
        self.template = template
        self.channel = channel
        self.reason = reason


@dataclass(frozen=True)
class Rendered:
    """One channel's message, fully rendered: every part present or the render failed."""

    template: str
    channel: str
    locale: str
    subject: str | None = None
    html: str | None = None
    text: str | None = None
    title: str | None = None
    body: str | None = None
    action_url: str | None = None
    payload: dict[str, Any] | None = None
    sms: SmsLength | None = field(default=None)
    # Email only: what to attach when it is sent, by reference (e.g. {"kind": "invoice_pdf",
    # "id": "in_..."}); the channel's AttachmentSource makes the file at send time.
    attachments: tuple[dict[str, str], ...] = ()

    def summary(self) -> str:
        """One line describing the message (used by digests and logs)."""
        line = self.subject or self.title or self.text or json.dumps(self.payload)
        return line.strip().splitlines()[0] if line.strip() else self.template

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"template": self.template, "channel": self.channel,
                               "locale": self.locale}
        for key in ("subject", "html", "text", "title", "body", "action_url", "payload"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.sms is not None:
            out["sms"] = {"encoding": self.sms.encoding, "units": self.sms.units,
                          "segments": self.sms.segments}
        if self.attachments:
            out["attachments"] = [dict(a) for a in self.attachments]
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Rendered:
        sms = d.get("sms")
        return cls(
            template=d["template"], channel=d["channel"], locale=d["locale"],
            subject=d.get("subject"), html=d.get("html"), text=d.get("text"),
            title=d.get("title"), body=d.get("body"), action_url=d.get("action_url"),
            payload=d.get("payload"),
            sms=SmsLength(sms["encoding"], sms["units"], sms["segments"]) if sms else None,
            attachments=tuple({str(k): str(v) for k, v in a.items()} for a in d.get("attachments") or ()),
        )


# The templates shipped with the code (the checkout's or the installed package's templates/).
PACKAGE_TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


def default_templates_dir() -> Path:
    from engine.config import get_settings, shipped_dir

    return shipped_dir(get_settings().templates_dir)


# -- filters -------------------------------------------------------------------------------

_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "CHF": "CHF "}
_MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
              "Dec")


def _language(ctx: Context) -> str:
    return str(ctx.get("locale") or DEFAULT_LOCALE).split("-")[0].split("_")[0].lower()


def format_money(value: Any, currency: str, language: str = DEFAULT_LOCALE) -> str:
    try:
        amount = Decimal(str(value))
    except InvalidOperation as exc:
        raise ValueError(f"money: {value!r} is not an amount") from exc
    currency = str(currency).upper()
    places = minor_units(currency) if len(currency) == 3 else 2
    amount = amount.quantize(Decimal(1).scaleb(-places))
    sign = "-" if amount < 0 else ""
    whole, _, frac = f"{abs(amount):f}".partition(".")
    group, point = (".", ",") if language == "de" else (",", ".")
    grouped = f"{int(whole):,}".replace(",", group)
    number = grouped + (point + frac if places else "")
    if language == "de":
        return f"{sign}{number} {_SYMBOLS.get(currency, currency + ' ').strip()}"
    symbol = _SYMBOLS.get(currency)
    return f"{sign}{symbol}{number}" if symbol else f"{sign}{number} {currency}"


def format_date(value: Any, language: str = DEFAULT_LOCALE) -> str:
    if isinstance(value, str):
        text = value.replace("Z", "+00:00")
        value = datetime.fromisoformat(text) if "T" in text else date.fromisoformat(text)
    if isinstance(value, datetime):
        value = value.date()
    if not isinstance(value, date):
        raise ValueError(f"date: {value!r} is not a date")
    if language == "de":
        return f"{value.day:02d}.{value.month:02d}.{value.year}"
    return f"{_MONTHS_EN[value.month - 1]} {value.day}, {value.year}"


@pass_context
def _money_filter(ctx: Context, value: Any, currency: str = "USD") -> str:
    return format_money(value, currency, _language(ctx))


@pass_context
def _date_filter(ctx: Context, value: Any) -> str:
    return format_date(value, _language(ctx))


# -- the renderer --------------------------------------------------------------------------


class Renderer:
    """Renders templates from one directory. Thread-safe; compiled templates are cached."""

    def __init__(self, directory: str | Path | None = None,
                 limits: RenderLimits | None = None, *, reload: bool | None = None) -> None:
        """`reload`: check a compiled template's file before each render and compile it
        again when it changed (an edited template takes effect without a restart). None:
        yes, unless the directory is the package's own templates/ (shipped with the code,
        they change with it, not while a system runs: a stat per template per render saved)."""
        self.directory = Path(directory) if directory is not None else default_templates_dir()
        self.limits = limits or RenderLimits()
        self.reload = reload if reload is not None else self.directory.resolve() != PACKAGE_TEMPLATES
        self.env = LimitedSandbox(
            loader=FileSystemLoader(str(self.directory)),
            undefined=StrictUndefined,
            autoescape=jinja2.select_autoescape(
                enabled_extensions=("html", "htm", "xml"), default_for_string=False
            ),
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=self.reload,
        )
        self.env.filters["money"] = guard_filter("money", _money_filter)
        self.env.filters["date"] = guard_filter("date", _date_filter)
        self._locales: dict[tuple[str, str, str], str] = {}
        self._lock = threading.Lock()

    # Which files make up a channel's message.
    @staticmethod
    def _files(channel: str, name: str, locale: str) -> list[str]:
        if channel == "email":
            return [f"email/{locale}/{name}.txt", f"email/{locale}/{name}.html"]
        if channel == "sms":
            return [f"sms/{locale}/{name}.txt"]
        if channel == "in_app":
            return [f"in_app/{locale}/{name}.txt"]
        if channel == "webhook":
            return [f"webhook/{name}.json"]
        raise ValueError(f"unknown channel {channel!r}; channels are {', '.join(CHANNELS)}")

    def resolve_locale(self, name: str, channel: str, locale: str | None) -> str:
        """The first of LOCALE, its language, and English that has all of the channel's files."""
        wanted = (locale or DEFAULT_LOCALE).replace("_", "-")
        key = (name, channel, wanted)
        with self._lock:
            hit = self._locales.get(key)
        if hit is not None:
            return hit
        candidates = [wanted, wanted.split("-")[0].lower(), DEFAULT_LOCALE]
        for candidate in dict.fromkeys(candidates):
            if all((self.directory / f).is_file() for f in self._files(channel, name, candidate)):
                with self._lock:
                    self._locales[key] = candidate
                return candidate
        raise TemplateError(name, channel, f"no template for locale {wanted!r} nor for English "
                            f"(looked for {', '.join(self._files(channel, name, DEFAULT_LOCALE))})")

    def names(self) -> list[str]:
        """Template names that exist for at least one channel in English."""
        found: set[str] = set()
        for channel in CHANNELS:
            base = self.directory / channel
            if channel != "webhook":
                base = base / DEFAULT_LOCALE
            if base.is_dir():
                found.update(p.stem for p in base.iterdir()
                             if p.is_file() and not p.name.startswith("_"))
        return sorted(found)

    def render(self, name: str, channel: str, data: Mapping[str, Any],
               locale: str | None = None, customer: Mapping[str, Any] | None = None) -> Rendered:
        """Render one channel's message. Raises TemplateError (never a partial message)."""
        if channel not in CHANNELS:
            raise TemplateError(name, channel, f"unknown channel; channels are {CHANNELS}")
        if not name.replace("_", "").isalnum():
            raise TemplateError(name, channel, "template names are letters, digits and _")
        resolved = self.resolve_locale(name, channel, locale)
        try:
            context = plain_data(dict(data))
            context["customer"] = plain_data(dict(customer or {}), "customer")
        except TypeError as exc:
            raise TemplateError(name, channel, str(exc)) from exc
        context["locale"] = resolved
        try:
            with RenderBudget(self.limits):
                return self._render(name, channel, resolved, context)
        except TemplateError:
            raise
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(name, channel, f"{exc.filename or exc.name}:{exc.lineno}: "
                                f"syntax error: {exc.message}") from exc
        except jinja2.UndefinedError as exc:
            raise TemplateError(name, channel, f"{self._where(exc)}undefined variable: "
                                f"{exc.message}") from exc
        except jinja2.sandbox.SecurityError as exc:
            raise TemplateError(name, channel, f"not allowed: {exc}") from exc
        except RecursionError as exc:
            raise TemplateError(name, channel, "recursion too deep") from exc
        except Exception as exc:  # a filter's ValueError, a TypeError, MemoryError, TemplateNotFound, ...
            raise TemplateError(name, channel, f"{type(exc).__name__}: {exc}") from exc

    def _where(self, exc: BaseException) -> str:
        """`email/en/quota_warning.txt:3: ` for the innermost template line of a failure:
        jinja2 rewrites its tracebacks so that template frames carry the file and line."""
        found = ""
        try:
            tb = jinja2.debug.rewrite_traceback_stack().__traceback__  # the one being handled
        except Exception:  # the location is a help, never a second failure
            tb = exc.__traceback__
        root = str(self.directory.resolve())
        while tb is not None:
            filename = tb.tb_frame.f_code.co_filename
            if filename.startswith(root) and filename != __file__:
                found = f"{Path(filename).relative_to(root)}:{tb.tb_lineno}: "
            tb = tb.tb_next
        return found

    def _blocks(self, path: str, context: dict[str, Any],
                required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict[str, str]:
        tmpl = self.env.get_template(path)
        out: dict[str, str] = {}
        ctx = tmpl.new_context(context)  # the blocks share one context, as in a full render
        for block in required + optional:
            func = tmpl.blocks.get(block)
            if func is None:
                if block in required:
                    raise TemplateError(path, "-", f"{path} has no block {block!r}")
                continue
            text = collect(func(ctx), self.limits, f"{path}#{block}")
            out[block] = text.strip()
        return out

    def _whole(self, path: str, context: dict[str, Any]) -> str:
        tmpl = self.env.get_template(path)
        return collect(tmpl.root_render_func(tmpl.new_context(context)), self.limits, path)

    def _render(self, name: str, channel: str, locale: str, context: dict[str, Any]) -> Rendered:
        # `render` checked the channel: one of CHANNELS.
        by_channel = {"email": self._email, "sms": self._sms, "in_app": self._in_app, "webhook": self._webhook}
        return by_channel[channel](name, locale, context)

    def _email(self, name: str, locale: str, context: dict[str, Any]) -> Rendered:
        parts = self._blocks(f"email/{locale}/{name}.txt", context, ("subject", "text"))
        subject = " ".join(parts["subject"].split())
        if not subject:
            raise TemplateError(name, "email", "the subject is empty")
        html = self._whole(f"email/{locale}/{name}.html", context)
        return Rendered(name, "email", locale, subject=subject, html=html, text=parts["text"] + "\n")

    def _sms(self, name: str, locale: str, context: dict[str, Any]) -> Rendered:
        text = self._whole(f"sms/{locale}/{name}.txt", context).strip()
        if not text:
            raise TemplateError(name, "sms", "the SMS text is empty")
        length = sms_length(text)
        if length.segments > MAX_SMS_SEGMENTS:
            raise TemplateError(name, "sms", f"the SMS needs {length.segments} segments "
                                f"({length.encoding}); the limit is {MAX_SMS_SEGMENTS}")
        return Rendered(name, "sms", locale, text=text, sms=length)

    def _in_app(self, name: str, locale: str, context: dict[str, Any]) -> Rendered:
        parts = self._blocks(f"in_app/{locale}/{name}.txt", context, ("title", "body"), ("action_url",))
        link = parts.get("action_url") or None
        # http(s), or a path on this site ("//host" would be another site's)
        if link is not None and not (link.startswith(("https://", "http://", "/")) and not link.startswith("//")):
            raise TemplateError(name, "in_app", f"action_url {link!r} must be http(s) or a "
                                "path starting with /")
        return Rendered(name, "in_app", locale, title=" ".join(parts["title"].split()),
                        body=parts["body"], action_url=link)

    def _webhook(self, name: str, locale: str, context: dict[str, Any]) -> Rendered:
        raw = self._whole(f"webhook/{name}.json", context)
        try:
            payload = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise TemplateError(name, "webhook", f"the webhook template is not valid JSON: {exc} "
                                "(write values with |tojson)") from exc
        if not isinstance(payload, dict):
            raise TemplateError(name, "webhook", "the webhook template must give a JSON object")
        return Rendered(name, "webhook", locale, payload=payload)


def preview(name: str, channel: str = "email", locale: str = DEFAULT_LOCALE,
            renderer: Renderer | None = None) -> Rendered:
    """Render NAME with the sample data shipped for it (`billing template preview`)."""
    from engine.messaging.samples import sample_customer, sample_data

    try:
        data = sample_data(name)
    except KeyError as exc:
        raise TemplateError(name, channel, str(exc.args[0])) from None
    return (renderer or Renderer()).render(
        name, channel, data, locale, sample_customer(locale)
    )
