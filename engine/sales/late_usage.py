"""Late usage: events received for periods already closed, each such period priced again
with every event now known against what its documents billed, on the next period's
invoice (`late_pieces`) or on an adjustment invoice of their own (`bill_late_usage`).
When it is due is engine.sales.due. Moved from engine.sales.cycle."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime

from sqlalchemy.orm import Session

from engine.catalog.model import Catalog
from engine.periods import Period
from engine.sales.catalog_versions import catalog_for_version
from engine.sales.due import at_midnight, billed_until, late_since
from engine.sales.invoicing import Arrears
from engine.sales.issuing import issue_document, price_pieces
from engine.sales.ledger import billed_periods
from engine.sales.models import Customer, Subscription
from engine.sales.pieces import Priced, StepContext, closed_piece
from engine.sales.step_events import StepResult


def late_pieces(session: Session, ctx: StepContext, catalog: Catalog, sub: Subscription, before: date) -> list[Priced]:
    """Usage received since the last document for periods already closed: each such period
    priced again with every event now known, against what its close billed (the difference
    becomes adjustment lines that name the period; the minimum's true-up follows). The
    document these pieces go on bills the late usage waiting: the mark is cleared."""
    since = late_since(sub)
    sub.late_usage_since = None
    if since is None:
        return []
    types = {m.event for m in catalog.metrics.values()}
    times = ctx.src.late_times(sub.customer_id, since, at_midnight(before), types)
    if not times:
        return []
    out = []
    for hist in billed_periods(session, sub.id, times):
        closed = hist.last("arrears", charged=False)
        assert closed is not None
        period = Period(closed.period_start, closed.period_end)
        again = closed_piece(session, hist, period, sub.customer_id)
        assert again is not None
        piece = replace(again, before=hist.total("advance"), replaces=hist.total("arrears"))
        out.append(Priced(piece, "late", closed.cycle, closed.version_id))
    return out


def bill_late_usage(
    session: Session, sub: Subscription, customer: Customer, now: datetime, ctx: StepContext
) -> StepResult:
    """Late usage on its own: every closed period it reaches (renewed, cut short by a change of
    interval, or cancelled) priced again with every event now known, against what its
    documents billed, on one adjustment invoice (a minimum's true-up shrinks as the usage
    grows). Nothing late, or nothing that changes a figure: no document. Idempotent: what is
    billed is the difference from the period ledger, and the mark is cleared with it."""
    until = billed_until(sub)
    result = StepResult(sub.id, "late_usage", now)
    if until is None:
        sub.late_usage_since = None
        return result
    catalog = catalog_for_version(session, sub.catalog_version_id)
    priced = late_pieces(session, ctx, catalog, sub, until)
    if not priced:
        return result
    last = priced[-1]  # the latest period reached: the invoice names it
    doc = price_pieces(
        priced, customer, plan_id=last.piece.plan.id, period=last.piece.period, catalog=last.piece.catalog
    )
    if not doc.lines:
        return result
    issued, _ = issue_document(
        session,
        sub,
        customer,
        priced,
        reason="late",
        billing_key=f"late:{now.date().isoformat()}",
        now=now,
        period=last.piece.period,
        arrears=Arrears(last.piece.period, last.piece.plan.id, last.version_id, last.piece.quantity),
        catalog=last.piece.catalog,
        doc=doc,
    )
    sub.last_billed_at = now
    result.document_id = issued.id
    return result
