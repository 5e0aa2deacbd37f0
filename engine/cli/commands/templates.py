"""`billing template preview`: a template rendered with the sample context of the event that
sends it. Moved from engine/cli/commands/ops.py."""

from __future__ import annotations

import argparse
import json
from typing import Any

from engine.cli.commands.lint import loadable_rulesets
from engine.cli.errors import BadInput
from engine.config import get_settings


def register(sub: Any) -> None:
    """Message templates: `template preview`."""
    p = sub.add_parser("template", help="message templates")
    t = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    pv = t.add_parser("preview", help="render a template with the sample context of the event that triggers it")
    pv.add_argument("name")
    pv.add_argument("--channel", default="email", choices=["email", "sms", "in_app", "webhook"])
    pv.add_argument("--locale", default="en")
    pv.add_argument("--rules", default=None, help="rulesets that send it (default: the shipped rules/)")
    pv.set_defaults(func=run_template_preview)


def run_template_preview(args: argparse.Namespace) -> int:
    """Render NAME with the sample context of the event that really triggers it (the first
    shipped rule that sends it), so a variable that event does not carry fails here."""
    from engine.config import shipped_dir
    from engine.messaging import Renderer, TemplateError
    from engine.system.samples import CUSTOMER, preview_data

    settings = get_settings()
    rulesets = loadable_rulesets([str(args.rules or shipped_dir(settings.rules_dir))])
    renderer = Renderer(shipped_dir(settings.templates_dir))
    try:
        data = preview_data(args.name, rulesets)
        rendered = renderer.render(args.name, args.channel, data, args.locale, dict(CUSTOMER, locale=args.locale))
    except (TemplateError, KeyError) as exc:
        raise BadInput(str(exc.args[0] if isinstance(exc, KeyError) else exc)) from None
    for key in ("subject", "title", "text", "body", "action_url", "html"):
        value = getattr(rendered, key, None)
        if value:
            print(f"--- {key}\n{value}")
    if rendered.payload is not None:
        print("--- payload\n" + json.dumps(rendered.payload, indent=2))
    if rendered.sms is not None:
        print(f"--- sms: {rendered.sms}")
    return 0
