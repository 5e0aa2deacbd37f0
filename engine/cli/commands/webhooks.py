"""`billing webhooks`: the product's event webhooks for operators (the same calls as
`/v1/webhook-endpoints` over HTTP): register, list, enable or disable, rotate the secret,
read the delivery log, replay one delivery or a time range."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from engine.cli.commands.serve import require_migrated
from engine.cli.errors import BadInput
from engine.config import get_settings


def register(sub: Any) -> None:
    p = sub.add_parser("webhooks", help="the product's event webhooks: endpoints, delivery log, replays")
    w = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    a = w.add_parser("add", help="register an endpoint; its signing secret is printed once, on the last line")
    a.add_argument("url")
    a.add_argument("--events", nargs="+", required=True, metavar="PATTERN",
                   help="event types (invoice.paid), prefixes (invoice.*) or * for every event")
    a.add_argument("--description", default="")
    a.set_defaults(func=run_add)
    ls = w.add_parser("list", help="the endpoints (never their secrets)")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=run_list)
    for name, enabled in (("enable", True), ("disable", False)):
        e = w.add_parser(name, help=f"{name} an endpoint (a disabled one's deliveries wait)")
        e.add_argument("endpoint_id")
        e.set_defaults(func=run_enable, enabled=enabled)
    r = w.add_parser("rotate", help="a new secret, printed once; the old one signs beside it for the grace")
    r.add_argument("endpoint_id")
    r.add_argument("--grace-hours", type=int, default=24)
    r.set_defaults(func=run_rotate)
    d = w.add_parser("deliveries", help="an endpoint's delivery log, newest first")
    d.add_argument("endpoint_id")
    d.add_argument("--status", choices=["pending", "delivered", "dead"])
    d.add_argument("--limit", type=int, default=50)
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=run_deliveries)
    rp = w.add_parser("replay", help="send one delivery again (same body and webhook-id)")
    rp.add_argument("delivery_id")
    rp.set_defaults(func=run_replay)
    rr = w.add_parser("replay-range", help="send again an endpoint's deliveries of events in [--from, --to)")
    rr.add_argument("endpoint_id")
    rr.add_argument("--from", dest="start", required=True, type=_time("--from"))
    rr.add_argument("--to", dest="end", required=True, type=_time("--to"))
    rr.set_defaults(func=run_replay_range)


def _time(flag: str) -> Callable[[str], datetime]:
    def parse(text: str) -> datetime:
        try:
            value = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag}: {text!r} is not an ISO time (2026-11-01T00:00:00Z)") from None
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    return parse


@contextmanager
def _session() -> Iterator[tuple[Session, Any]]:
    """A session on the configured database, the URL policy, and refusals as bad input."""
    from engine import webhooks
    from engine.store import database_of
    from engine.system.assembly import webhooks_policy

    settings = get_settings()
    require_migrated(settings.database_url)
    db = database_of(settings)
    try:
        with db.session() as session:
            yield session, webhooks_policy(settings)
    except (webhooks.PatternError, webhooks.UrlError, webhooks.NotFound, ValueError) as exc:
        raise BadInput(str(exc).strip("'\"")) from None
    finally:
        db.dispose()


def _now() -> datetime:
    return datetime.now(UTC)


def run_add(args: argparse.Namespace) -> int:
    from engine import webhooks

    with _session() as (session, policy):
        made = webhooks.create_endpoint(session, args.url, args.events, now=_now(), policy=policy,
                                        description=args.description)
    print(f"registered {made.id} for {', '.join(made.event_types)} at {made.url}; its secret is shown once:")
    print(made.secret)
    return 0


def run_list(args: argparse.Namespace) -> int:
    from engine import webhooks

    with _session() as (session, _):
        items = [e.public() for e in webhooks.list_endpoints(session)]
    if args.json:
        print(json.dumps(items, indent=2))
        return 0
    for e in items:
        state = "enabled" if e["enabled"] else "disabled"
        print(f"{e['id']}  {state}  {e['url']}  {','.join(e['event_types'])}  {e['description']}")  # type: ignore[arg-type]
    return 0


def run_enable(args: argparse.Namespace) -> int:
    from engine import webhooks

    with _session() as (session, policy):
        webhooks.update_endpoint(session, args.endpoint_id, now=_now(), policy=policy, enabled=args.enabled)
    print(f"{args.endpoint_id} {'enabled' if args.enabled else 'disabled'}")
    return 0


def run_rotate(args: argparse.Namespace) -> int:
    from engine import webhooks

    if not 0 <= args.grace_hours <= 168:
        raise BadInput(f"--grace-hours: {args.grace_hours} is not between 0 and 168")
    with _session() as (session, _):
        made = webhooks.rotate_secret(session, args.endpoint_id, now=_now(), grace=timedelta(hours=args.grace_hours))
    print(f"rotated {made.id}; the old secret signs too for {args.grace_hours} h; the new one is shown once:")
    print(made.secret)
    return 0


def run_deliveries(args: argparse.Namespace) -> int:
    from engine import webhooks

    with _session() as (session, _):
        items = webhooks.list_deliveries(session, args.endpoint_id, status=args.status, limit=args.limit)
    if args.json:
        print(json.dumps(items, indent=2))
        return 0
    for d in items:
        print(f"{d['id']}  {d['status']:9}  attempts={d['attempts']}  code={d['response_code']}  "
              f"latency_ms={d['latency_ms']}  {d['event_type']}  {d['event_id']}  {d['created_at']}")
    return 0


def run_replay(args: argparse.Namespace) -> int:
    from engine import webhooks

    with _session() as (session, _):
        made = webhooks.replay_delivery(session, args.delivery_id, now=_now())
    print(f"replaying {args.delivery_id} as {made['id']}")
    return 0


def run_replay_range(args: argparse.Namespace) -> int:
    from engine import webhooks

    if args.end <= args.start:
        raise BadInput(f"--to: {args.end.isoformat()} is not after --from {args.start.isoformat()}")
    with _session() as (session, _):
        items = webhooks.replay_range(session, args.endpoint_id, args.start, args.end, now=_now())
    print(f"replaying {len(items)} deliveries of {args.endpoint_id}")
    return 0
