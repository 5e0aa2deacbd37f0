"""Running totals of the usage that burns token wallets (docs/credits.md, Token wallets).

Ingestion adds each new event's quantity to its customer's total per burning metric, in the
transaction that stores the event: the insert's RETURNING names exactly the events stored now,
so a replayed id adds nothing and two ingesting workers add each their own. Only for wallet
holders (the customer check of the batch reads `has_wallet` with the ids, no extra query): a
batch of customers without a wallet costs nothing more. A row ingestion creates is born
`counted = False`: the first burn replaces its quantity by the whole history, once
(engine/sales/tokens.py), because events stored before the wallet opened were never added.

A total is per metric id of the customer's catalog: a catalog change that redefines a metric
under the same id keeps the total counted the old way."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sqlalchemy import Select, and_, select, text
from sqlalchemy.orm import Session

from engine.catalog.model import Catalog
from engine.periods import Period
from engine.pricing import UsageEvent
from engine.pricing.usage import aggregate, matches
from engine.sales.catalog_versions import catalog_for_version
from engine.sales.models import BurnTotal, CatalogVersion, Customer, Subscription

ZERO = Decimal(0)
# Every event counts when it is stored, whatever its date: a total has no window.
ALL_TIME = Period(date(1970, 1, 1), date(9999, 12, 31))


@dataclass(frozen=True, slots=True)
class Total:
    """A burn total as read (the row's quantity and whether it counts the history)."""

    quantity: Decimal
    counted: bool


def latest_catalogs(session: Session, customer_ids: Iterable[str], *, holders_only: bool = False) -> dict[str, Catalog]:
    """Each customer's catalog of their latest subscription (the one their packs are bought
    from): one query for them all, which reads the versions' checksums too (a catalog this
    process built costs nothing more). `holders_only`: only the customers holding a wallet
    (`has_wallet`, in the same query)."""
    wanted = sorted(set(customer_ids))
    versions: dict[str, tuple[int, str]] = {}
    for start in range(0, len(wanted), 900):  # under SQLite's bound-parameter limit
        stmt = _versions(wanted[start : start + 900], holders_only)
        versions.update((cid, (vid, digest)) for cid, vid, digest in session.execute(stmt))  # the latest wins
    return {cid: catalog_for_version(session, vid, digest) for cid, (vid, digest) in versions.items()}


def _versions(customer_ids: Sequence[str], holders_only: bool) -> Select[str, int, str]:
    """The customers' subscriptions' catalog versions and checksums, the latest last."""
    stmt = (
        select(Subscription.customer_id, Subscription.catalog_version_id, CatalogVersion.checksum)
        .join(CatalogVersion, CatalogVersion.id == Subscription.catalog_version_id)
        .where(Subscription.customer_id.in_(customer_ids))
        .order_by(Subscription.customer_id, Subscription.created_at, Subscription.id)
    )
    if holders_only:
        stmt = stmt.join(Customer, Customer.id == Subscription.customer_id).where(Customer.has_wallet.is_(True))
    return stmt


def holders_with_totals(
    session: Session, customer_ids: Iterable[str]
) -> tuple[dict[str, Catalog], dict[str, dict[str, Total]]]:
    """`latest_catalogs(holders_only=True)` and the holders' burn totals as committed now, in
    one query (the burn of a usage batch: its first read). Each subscription row comes once
    per total of the customer, the latest subscription still last."""
    wanted = sorted(set(customer_ids))
    versions: dict[str, tuple[int, str]] = {}
    totals: dict[str, dict[str, Total]] = {}
    for start in range(0, len(wanted), 900):  # under SQLite's bound-parameter limit
        stmt = (
            _versions(wanted[start : start + 900], True)
            .add_columns(BurnTotal.metric, BurnTotal.quantity, BurnTotal.counted)
            .outerjoin(BurnTotal, BurnTotal.customer_id == Subscription.customer_id)
        )
        for cid, vid, digest, metric, quantity, counted in session.execute(stmt):
            versions[cid] = (vid, digest)
            if metric is not None:
                totals.setdefault(cid, {})[metric] = Total(quantity, counted)
    return {cid: catalog_for_version(session, vid, digest) for cid, (vid, digest) in versions.items()}, totals


def batch_quantities(catalogs: Mapping[str, Catalog], stored: Sequence[UsageEvent]) -> dict[tuple[str, str], Decimal]:
    """What the new events add per (customer, burning metric), as the invoice aggregates them
    (pure). A metric no event of the batch matches adds nothing and gets no row here."""
    by_customer: dict[str, list[UsageEvent]] = {}
    for e in stored:
        if e.customer_id in catalogs:
            by_customer.setdefault(str(e.customer_id), []).append(e)
    out: dict[tuple[str, str], Decimal] = {}
    for cid, events in by_customer.items():
        wallet = catalogs[cid].tokens
        for metric_id in (wallet.burn if wallet is not None else {}):
            metric = catalogs[cid].metrics[metric_id]  # the catalog checks burn names its metrics
            if any(matches(metric, e) for e in events):
                out[(cid, metric_id)] = aggregate(metric, events, ALL_TIME).quantity
    return out


Version = tuple[int, str]  # a catalog version's id and checksum


def customers_with_versions(session: Session, customer_ids: Iterable[str]) -> dict[str, Version | None]:
    """The customers that exist, each with their latest subscription's catalog version when
    they hold a wallet (None otherwise, or without a subscription): ingestion's customer check
    and the burn totals' catalogs in one query. A holder's row comes once per subscription,
    the latest last; the others' once."""
    wanted = sorted(set(customer_ids))
    out: dict[str, Version | None] = {}
    for start in range(0, len(wanted), 900):  # under SQLite's bound-parameter limit
        stmt = (
            select(Customer.id, Subscription.catalog_version_id, CatalogVersion.checksum)
            .outerjoin(Subscription, and_(Subscription.customer_id == Customer.id, Customer.has_wallet.is_(True)))
            .outerjoin(CatalogVersion, CatalogVersion.id == Subscription.catalog_version_id)
            .where(Customer.id.in_(wanted[start : start + 900]))
            .order_by(Customer.id, Subscription.created_at, Subscription.id)
        )
        out.update((cid, None if vid is None else (vid, digest)) for cid, vid, digest in session.execute(stmt))
    return out


def add_to_totals(session: Session, stored: Sequence[UsageEvent], versions: Mapping[str, Version | None]) -> int:
    """Add the batch's new events of wallet holders (the customers with a version in
    `versions`) to their burn totals. Returns the rows touched. A summed value the metric
    cannot read raises as the invoice would."""
    catalogs = {cid: catalog_for_version(session, *version) for cid, version in versions.items() if version is not None}
    if not catalogs:
        return 0
    added = batch_quantities(catalogs, [e for e in stored if e.customer_id in catalogs])
    if session.get_bind().dialect.name == "postgresql":
        _add_postgres(session, added)
    else:
        _add_one_writer(session, added)
    return len(added)


# PostgreSQL: one upsert for the batch, the rows as arrays through unnest (one statement text
# whatever the number of customers: a VALUES list of four parameters a row was built, sent and
# parsed anew for each size of batch, which cost more than the upsert). NUMERIC adds exactly.
_PG_ADD = text(
    """
    INSERT INTO sales_burn_totals (customer_id, metric, quantity, counted)
    SELECT t.customer_id, t.metric, t.quantity, false
    FROM unnest(CAST(:customers AS text[]), CAST(:metrics AS text[]), CAST(:quantities AS numeric[]))
        WITH ORDINALITY AS t(customer_id, metric, quantity, n)
    ORDER BY t.n
    ON CONFLICT (customer_id, metric) DO UPDATE SET quantity = sales_burn_totals.quantity + excluded.quantity
    """
)


def _add_postgres(session: Session, added: Mapping[tuple[str, str], Decimal]) -> None:
    """The batch's rows in key order (PostgreSQL takes the rows' locks in that order: one lock
    order for concurrent batches); the row lock makes two batches' additions follow each other."""
    if not added:
        return
    keys = sorted(added)
    session.execute(
        _PG_ADD,
        {
            "customers": [cid for cid, _m in keys],
            "metrics": [m for _c, m in keys],
            "quantities": [added[k] for k in keys],
        },
    )


def _add_one_writer(session: Session, added: Mapping[tuple[str, str], Decimal]) -> None:
    """SQLite keeps decimals as text (SQL would add them as floats): read, add in Python,
    write; the write transaction holds the database's one writer lock throughout."""
    stmt = select(BurnTotal).where(BurnTotal.customer_id.in_(sorted({cid for cid, _m in added})))
    rows = {(r.customer_id, r.metric): r for r in session.scalars(stmt)}  # one read for the batch
    for (cid, metric), quantity in sorted(added.items()):
        row = rows.get((cid, metric))
        if row is None:
            session.add(BurnTotal(customer_id=cid, metric=metric, quantity=quantity, counted=False))
        else:
            row.quantity += quantity
    session.flush()
