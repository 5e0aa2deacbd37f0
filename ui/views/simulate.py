"""What-if: the baseline (published) against a draft, on a cohort from the store, a CSV or a
synthetic one, months ahead on the live pricing code."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st
from dateutil.relativedelta import relativedelta

from engine import rules
from engine.catalog import Catalog, load_catalog
from engine.console import check_draft
from engine.console import rulesets as crules
from engine.console import store as cstore
from engine.simulation import (
    CardModel,
    CohortError,
    Distribution,
    Prepaid,
    Share,
    SimulationError,
    SyntheticSpec,
    assign,
    cohort_from_csv,
    cohort_from_records,
    simulate,
    synthetic_cohort,
)
from engine.simulation.cohort import Cohort, typical_usage
from engine.store import Database
from engine.system import lifecycle_on_engine, lifecycle_system
from engine.system.console_operations import console_operations
from engine.system.stored_usage import stored_usage
from views.common import SEGMENTS, clock, example_files, money, need, today

EDITOR_TEXT = "the editor's text"


def _baselines(db: Database) -> dict[str, Any]:
    """label -> (where, name or path, catalog name)"""
    out: dict[str, Any] = {}
    with db.session() as s:
        for name, v in cstore.published_catalogs(s).items():
            out[f"published: {name} v{v['version']}"] = ("published", name, name)
    for path in example_files("catalog"):
        try:
            name = load_catalog(path).name
        except Exception:
            continue
        out[f"file: {path.name} (not published)"] = ("file", path, name)
    return out


def _load_baseline(db: Database, ref: tuple[str, Any]) -> Catalog:
    if ref[0] == "published":
        with db.session() as s:
            c = cstore.published_catalog(s, ref[1])
        if c is None:
            raise CohortError([f"catalog {ref[1]!r} is no longer published"])
        return c
    return load_catalog(ref[1])


def _drafts(db: Database) -> dict[str, tuple[str, str | None]]:
    out: dict[str, tuple[str, str | None]] = {}
    # The editor's text is a catalog draft only when it holds a catalog (a pricing rule just
    # written leaves a ruleset there: it is picked below, on the draft side, not simulated as one).
    if st.session_state.get("editor_kind", "catalog") == "catalog" and st.session_state.get("editor_text", "").strip():
        out[EDITOR_TEXT] = (st.session_state["editor_text"], None)
    with db.session() as s:
        for d in cstore.list_drafts(s, "catalog"):
            row = cstore.get_draft(s, "catalog", d["name"])
            if row is not None:
                out[f"draft: {d['name']}"] = (row.text, d["name"])
    return out


def _synthetic_form(db: Database, baseline: Catalog) -> SyntheticSpec:
    c1, c2, c3, c4 = st.columns(4)
    count = c1.number_input("Customers", min_value=0, max_value=2_000_000, value=1000, step=100, key="syn_count")
    growth = c2.number_input("New customers a month (%)", min_value=0.0, max_value=100.0, value=2.0, key="syn_growth")
    churn = c3.number_input("Churn a month (%)", min_value=0.0, max_value=99.0, value=1.5, key="syn_churn")
    ugrowth = c4.number_input(
        "Usage growth a month (%)", min_value=-50.0, max_value=100.0, value=0.0, key="syn_ugrowth"
    )
    st.markdown("**Plan mix** (relative weights)")
    cols = st.columns(max(len(baseline.plans), 1))
    mix = {}
    for i, pid in enumerate(baseline.plans):
        mix[pid] = cols[i].number_input(pid, min_value=0.0, value=1.0, key=f"syn_mix_{pid}")
    segments = _segment_mix()
    s1, s2 = st.columns(2)
    seats_lo = s1.number_input("Seats from", min_value=0, value=1, key="syn_seats_lo")
    seats_hi = s2.number_input("Seats to", min_value=0, value=10, key="syn_seats_hi")
    usage, default_usage, seed = _usage_form(baseline)
    observed = {}
    if default_usage == "store":
        with db.read_session() as s:
            observed = stored_usage(s, baseline.name, clock().now())
    return SyntheticSpec(
        observed=observed,
        store_read=default_usage == "store",
        count=int(count),
        plan_mix={k: float(v) for k, v in mix.items()},
        segments=segments,
        usage=usage,
        seats=Distribution("uniform", low=float(min(seats_lo, seats_hi)), high=float(max(seats_lo, seats_hi))),
        growth=growth / 100,
        churn=churn / 100,
        usage_growth=ugrowth / 100,
        months=int(st.session_state.get("sim_months", 12)),
        seed=seed,
        default_usage="typical" if default_usage == "store" else default_usage,
    )


def _segment_mix() -> dict[str, float]:
    """The cohort's segments, as relative weights: pricing rules by segment (an edu discount)
    only meet synthetic customers that have one. All 0 (the default): no segment."""
    st.markdown("**Segment mix** (relative weights; all 0: no segment, so no rule by segment applies)")
    cols = st.columns(len(SEGMENTS))
    weights = {
        seg: float(cols[i].number_input(f"Segment {seg}", min_value=0.0, value=0.0, key=f"syn_seg_{seg}"))
        for i, seg in enumerate(SEGMENTS)
    }
    return {seg: w for seg, w in weights.items() if w > 0}


USAGE_MODES = ["From the store", "Typical for each plan", "Set per metric", "None (zero usage)"]


def _usage_form(baseline: Catalog) -> tuple[dict[str, Distribution], str, int]:
    """The cohort's monthly usage: typical for each plan (around what it includes and its
    tiers, docs/console.md), a spread per metric, or none; and the random seed."""
    a, b = st.columns([3, 1])
    mode = a.radio("Usage a month", USAGE_MODES, horizontal=True, key="syn_usage_mode")
    seed = int(b.number_input("Random seed", min_value=0, value=7, step=1, key="syn_seed"))
    typical = {pid: typical_usage(baseline, plan) for pid, plan in baseline.plans.items()}
    if mode == USAGE_MODES[0]:
        st.caption(
            "Each plan's real monthly usage of the last 3 full months, drawn customer-month by customer-month; "
            "typical usage for the plans and metrics the store has none of. The result says which is which."
        )
        return {}, "store", seed
    if mode == USAGE_MODES[1]:
        shown = [
            f"{pid}: " + ", ".join(f"{m} ~{d.median:,.0f}" for m, d in dists.items())
            for pid, dists in typical.items()
            if dists
        ]
        st.caption(
            "Lognormal around each plan's typical median (most customers near it, a tail of heavy users): "
            + ("; ".join(shown) or "no plan reads usage")
        )
        return {}, "typical", seed
    if mode == USAGE_MODES[3]:
        st.caption("Every customer at zero usage: usage prices and quotas are not exercised.")
        return {}, "none", seed
    used = sorted({m for dists in typical.values() for m in dists})
    st.caption("Lognormal: most customers near the median, a tail of heavy users. A median of 0 means no usage.")
    usage: dict[str, Distribution] = {}
    for m in used:
        start = max(d.median for dists in typical.values() for k, d in dists.items() if k == m)
        x, y = st.columns(2)
        median = x.number_input(f"{m}: median", min_value=0.0, value=float(start), key=f"syn_median_{m}")
        sigma = y.number_input(f"{m}: spread (sigma)", min_value=0.0, max_value=5.0, value=0.8, key=f"syn_sigma_{m}")
        usage[m] = Distribution("lognormal", median=median, sigma=sigma)
    return usage, "none", seed


def _cohort(db: Database, source: str, baseline: Catalog, draft: Catalog, spec: SyntheticSpec | None) -> Cohort:
    if source == "Synthetic cohort":
        assert spec is not None
        return synthetic_cohort(spec, baseline)
    if source == "CSV":
        upload = st.session_state.get("sim_csv_file")
        text: str | bytes = upload.getvalue() if upload is not None else st.session_state.get("sim_csv_text", "")
        return cohort_from_csv(text, [baseline, draft])
    with db.session() as s:
        rows, notes = cstore.store_records(s, clock().now())
    if not rows:
        raise CohortError(notes or ["the store has no customers to simulate"])
    return cohort_from_records(rows, catalogs=[baseline, draft], source="store")


def render(db: Database, user: dict[str, Any]) -> None:
    st.header("What-if simulation")
    if not need(user, "simulate", "Simulating"):
        return
    baselines = _baselines(db)
    drafts = _drafts(db)
    if not baselines:
        st.info("Nothing is published and there are no example catalogs: publish a catalog first.")
        return
    if not drafts:
        st.info("Open or write a catalog draft in the Editor first.")
        return
    c1, c2 = st.columns(2)
    d_label = c2.selectbox("Draft", list(drafts), key="sim_draft")
    draft_text, draft_name = drafts[d_label]
    check = check_draft("catalog", draft_text)
    # The baseline defaults to what is published (or else the example file) under the draft's name.
    labels = list(baselines)
    index = next((i for i, lb in enumerate(labels) if baselines[lb][2] == check.name), 0)
    b_label = c1.selectbox("Baseline", labels, index=index, key="sim_baseline")
    if check.errors or check.catalog is None:
        st.error(f"The draft has {len(check.errors)} error(s); fix them in the Editor before simulating.")
        for p in check.errors[:20]:
            st.markdown(f"- line {p.line} · `{p.path}`: {p.message}")
        return
    draft = check.catalog
    baseline = _load_baseline(db, baselines[b_label])
    m1, m2 = st.columns(2)
    months = m1.number_input("Months ahead", min_value=1, max_value=60, value=12, key="sim_months")
    first = today().replace(day=1) + relativedelta(months=1)
    start = m2.date_input("First month", value=first, key="sim_start")
    source = st.radio(
        "Customers", ["Synthetic cohort", "CSV", "Customers in the store"], horizontal=True, key="sim_source"
    )
    spec = None
    if source == "Synthetic cohort":
        spec = _synthetic_form(db, baseline)
    elif source == "CSV":
        st.caption(
            "Columns: customer_id, plan, and optionally quantity, segment, country; every other column is a metric's usage a month."
        )
        st.file_uploader("Upload a CSV", type=["csv"], key="sim_csv_file")
        st.text_area("…or paste it", key="sim_csv_text", height=120)
    else:
        st.caption("Every customer with a live subscription, with their usage of the last full month.")
    plan_map, shares = _moves_form(baseline, draft)
    prepaid = _prepaid_form(baseline, spec.seed if spec is not None else 7)

    view = st.radio("What-if", ["Revenue", "Lifecycle (collection, dunning)"], horizontal=True, key="sim_view")
    if view == "Revenue":
        rules_in_force, rule_drafts = _pricing_rules_form(db)
        if st.button("Run simulation", key="sim_run", type="primary"):
            promotions, draft_promotions = _promotions(db, rules_in_force, rule_drafts)
            bar = st.progress(0.0, text="building the cohort…")
            cohort = _cohort(db, source, baseline, draft, spec)
            try:
                result = simulate(
                    baseline,
                    draft,
                    cohort,
                    months=int(months),
                    start=start if isinstance(start, date) else first,
                    plan_map=plan_map,
                    moved=assign(cohort, shares, seed=spec.seed if spec is not None else 7),
                    progress=lambda f, t: bar.progress(min(f, 1.0), text=t),
                    promotions=promotions,
                    draft_promotions=draft_promotions,
                    prepaid=prepaid,
                )
            except SimulationError as exc:
                st.error(str(exc))
                return
            bar.progress(1.0, text=f"done: {result.customer_months:,} customer-months in {result.seconds:.1f} s")
            st.session_state["sim_result"] = result
            if draft_name is not None or d_label == EDITOR_TEXT:
                name = draft_name or check.name
                with db.session() as s:
                    cstore.mark_simulated(
                        s, "catalog", name or "", draft_text, f"delta {result.totals['delta']} {result.currency}"
                    )
        result = st.session_state.get("sim_result")
        if result is not None:
            _show(result)
    else:
        _lifecycle(db, source, baseline, draft, spec, int(months), start, plan_map)


def _moves_form(baseline: Catalog, draft: Catalog) -> tuple[dict[str, str], list[Share]]:
    """Where customers go in the draft: each baseline plan's customers to a draft plan (the
    plans the draft drops must go somewhere), and a share of the cohort to a (new) plan."""
    st.markdown("**Where customers go in the draft**")
    targets = sorted(draft.plans)
    cols = st.columns(max(len(baseline.plans), 1))
    plan_map: dict[str, str] = {}
    for i, p in enumerate(baseline.plans):
        index = targets.index(p) if p in targets else 0
        chosen = cols[i].selectbox(f"Customers of {p} →", targets, index=index, key=f"sim_map_{p}")
        if chosen != p:
            plan_map[p] = chosen
    new = [p for p in targets if p not in baseline.plans]
    a, b, c = st.columns([2, 1, 3])
    to = a.selectbox("Give a plan a share of the cohort", ["(none)", *new, *[p for p in targets if p not in new]],
                     key="sim_share_plan")
    pct = b.number_input("Share (%)", min_value=0.0, max_value=100.0, value=20.0, step=5.0, key="sim_share_pct")
    from_plans = c.multiselect("…taken from the customers of (all when empty)", list(baseline.plans),
                               key="sim_share_from")
    if to == "(none)" or pct <= 0:
        return plan_map, []
    return plan_map, [Share(to, Decimal(str(pct)) / 100, tuple(from_plans))]


def _prepaid_form(baseline: Catalog, seed: int) -> Prepaid | None:
    """Credit packs: a share of the cohort buys one of the baseline's packs as they join (the
    draft's pack of the same id on the draft side), their bills drawn from the wallet."""
    packs = sorted(baseline.credits.packs) if baseline.credits else []
    if not packs:
        return None
    st.markdown("**Credit packs** (a share of the cohort prepays; their bills are drawn from the wallet)")
    a, b, c = st.columns([2, 1, 2])
    pack = a.selectbox("Pack bought when a customer joins", ["(none)", *packs], key="sim_pack")
    pct = b.number_input("Share (%)", min_value=0.0, max_value=100.0, value=30.0, step=5.0, key="sim_pack_pct")
    has_top_up = baseline.credits is not None and baseline.credits.top_up is not None
    top_up = c.checkbox("Automatic top-up (the catalog's threshold and pack)", value=False, key="sim_pack_top_up",
                        disabled=not has_top_up)
    if pack == "(none)" or pct <= 0:
        return None
    return Prepaid(Decimal(str(pct)) / 100, pack, bool(top_up and has_top_up), seed)


def _pricing_rules_form(db: Database) -> tuple[dict[str, str], list[str]]:
    """The pricing rules the what-if prices with: those in force, and ruleset drafts to try on
    the draft side."""
    with db.read_session() as s:
        live, where = crules.live_texts(s)
        drafts = sorted(d["name"] for d in cstore.list_drafts(s, "ruleset"))
    st.caption(
        f"Priced as quotes and invoices are, with the pricing rules in force ({where}: "
        f"{', '.join(sorted(live)) or 'none'}): promotions and discounts show per source below."
    )
    picked = st.multiselect("Pricing rule drafts on the draft side", drafts, key="sim_rulesets") if drafts else []
    return live, list(picked)


def _promotions(db: Database, live: dict[str, str], picked: list[str]) -> tuple[Any, Any]:
    """Promotion sources for both sides (engine.rules.RulePromotions, None: no pricing rule)."""
    texts = {name: text for name, text in live.items()}
    draft_texts = dict(texts)
    with db.read_session() as s:
        for name in picked:
            row = cstore.get_draft(s, "ruleset", name)
            check = cstore.check_stored(s, "ruleset", row.text, ops=console_operations()) if row is not None else None
            if row is None or check is None or check.errors:
                raise CohortError([f"ruleset draft {name!r} has errors: fix it in the Editor first"])
            draft_texts[check.name or name] = row.text
    runtime = rules.pricing_runtime(texts)
    draft_runtime = rules.pricing_runtime(draft_texts) if picked else runtime
    promotions = rules.RulePromotions(runtime, memo=True) if runtime is not None else None
    if draft_runtime is runtime:
        return promotions, promotions
    return promotions, rules.RulePromotions(draft_runtime, memo=True) if draft_runtime is not None else None


def _show(r: Any) -> None:
    t = r.totals
    cur = r.currency
    st.caption(f"{r.cohort} · {r.months[0]} to {r.months[-1]} · {r.customer_months:,} customer-months · before tax")
    a, b, c = st.columns(3)
    a.metric("Baseline revenue", money(t["baseline"], cur))
    b.metric("Draft revenue", money(t["draft"], cur), delta=f"{t['delta']:,.2f}")
    pct = t["delta_pct"]
    c.metric("Revenue delta", f"{t['delta']:+,.2f} {cur}", delta=f"{pct}%" if pct is not None else None)
    st.markdown(
        f"Revenue delta: **{t['delta']:+,.2f} {cur}** · {t['pay_more']:,} customers pay more, {t['pay_less']:,} pay less"
    )
    for w in r.warnings:
        st.warning(w)
    if r.usage_source:
        st.markdown("**Where the usage comes from**\n" + "\n".join(f"- {line}" for line in r.usage_source))
    if r.discounts:
        st.markdown("**Discounts** (pricing rules and coupons, before tax)")
        st.dataframe(pd.DataFrame([{k: str(v) for k, v in d.items()} for d in r.discounts]), hide_index=True)
        changed = [d for d in r.discounts if d["baseline"] != d["draft"]]
        if changed:
            st.markdown("Discounts the draft changes:\n" + "\n".join(
                f"- `{d['source']}` ({d['reason']}): {money(d['baseline'], cur)} off with the baseline, "
                f"{money(d['draft'], cur)} with the draft"
                for d in changed
            ))

    _show_prepaid(r)
    _show_progressive(r)

    months = pd.DataFrame(r.by_month)
    long = months.melt(id_vars=["month"], value_vars=["baseline", "draft"], var_name="catalog", value_name="revenue")
    long["revenue"] = long["revenue"].astype(float)
    st.altair_chart(
        alt.Chart(long)
        .mark_line(point=True)
        .encode(
            x="month:O",
            y=alt.Y("revenue:Q", title=f"revenue ({cur})"),
            color="catalog:N",
            tooltip=["month", "catalog", "revenue"],
        )
        .properties(title="Revenue per month", height=280),
        width="stretch",
    )
    mrr = months.melt(id_vars=["month"], value_vars=["mrr_baseline", "mrr_draft"], var_name="catalog", value_name="mrr")
    mrr["catalog"] = mrr["catalog"].str.removeprefix("mrr_")
    mrr["mrr"] = mrr["mrr"].astype(float)
    st.altair_chart(
        alt.Chart(mrr)
        .mark_line(point=True)
        .encode(
            x="month:O",
            y=alt.Y("mrr:Q", title=f"MRR ({cur})"),
            color="catalog:N",
            tooltip=["month", "catalog", "mrr"],
        )
        .properties(title="MRR over the months (longer periods spread over the months they cover)", height=280),
        width="stretch",
    )
    plans = pd.DataFrame(r.by_plan)
    if not plans.empty:
        pl = plans.melt(id_vars=["plan"], value_vars=["baseline", "draft"], var_name="catalog", value_name="revenue")
        pl["revenue"] = pl["revenue"].astype(float)
        st.altair_chart(
            alt.Chart(pl)
            .mark_bar()
            .encode(
                x="plan:N",
                xOffset="catalog:N",
                y="revenue:Q",
                color="catalog:N",
                tooltip=["plan", "catalog", "revenue"],
            )
            .properties(title="Revenue per plan", height=280),
            width="stretch",
        )

    def table(rows: list[dict[str, Any]]) -> pd.DataFrame:
        return pd.DataFrame([{k: (str(v) if v is not None else "") for k, v in row.items()} for row in rows])

    c1, c2 = st.columns(2)
    c1.markdown("**Per month**")
    c1.dataframe(table(r.by_month), hide_index=True)
    c2.markdown("**Per plan**")
    c2.dataframe(table(r.by_plan), hide_index=True)
    st.markdown("**Per segment**")
    st.dataframe(table(r.by_segment), hide_index=True)
    c1, c2 = st.columns(2)
    c1.markdown("**Would pay most more**")
    c1.dataframe(table(r.movers(10, more=True)), hide_index=True)
    c2.markdown("**Would pay most less**")
    c2.dataframe(table(r.movers(10, more=False)), hide_index=True)
    st.markdown("**Quotas and features**")
    if r.quota:
        st.dataframe(table(r.quota), hide_index=True)
        for q in r.quota:
            st.markdown(
                f"- `{q['feature']}`: {q['draft_over_limit']:,} customers over the limit with the draft "
                f"({q['baseline_over_limit']:,} with the baseline), {q['draft_blocked']:,} of them blocked"
            )
    else:
        st.write("No customer goes over a quota, in either catalog.")
    if r.features:
        for f in r.features:
            st.markdown(
                f"- {f['customers']:,} customers of `{f['plan']}` moving to `{f['draft_plan']}` would "
                f"**{'lose' if f['change'] == 'lost' else 'get less of'}** `{f['feature']}`"
            )
    else:
        st.write("No customer loses a feature.")
    d1, d2 = st.columns(2)
    d1.download_button(
        "Download per customer (CSV)", r.customers_csv(), "simulation_customers.csv", "text/csv", key="dl_customers"
    )
    d2.download_button("Download per month (CSV)", r.months_csv(), "simulation_months.csv", "text/csv", key="dl_months")


PACK_ROWS = [("customers", "Customers who bought"), ("packs_sold", "Packs sold (top-ups included)"),
             ("top_ups", "Automatic top-ups"), ("sold", "Cash at sale"), ("credit", "Credit granted"),
             ("consumed", "Credit consumed by bills"), ("earned", "Revenue earned as consumed"),
             ("expired", "Credit expired unused"), ("breakage", "Breakage revenue"),
             ("deferred", "Still deferred at the end"), ("collected", "Bills the wallets could not pay"),
             ("ran_out", "Customers who ran out")]
EARLY_ROWS = [("invoices", "Progressive invoices"), ("customers", "Customers invoiced early"),
              ("periods", "Periods with progressive invoices"), ("billed_early", "Billed before the close"),
              ("period_total", "Those periods' invoices in all"), ("quote_total", "Those periods' quotes")]


def _figures(rows: list[tuple[str, str]], figures: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame([{"": label, "baseline": str(figures["baseline"].get(k, "—")),
                          "draft": str(figures["draft"].get(k, "—"))}
                         for k, label in rows])


def _show_prepaid(r: Any) -> None:
    p = r.prepaid
    if p is None:
        return
    top_up = " with the automatic top-up" if p["top_up"] else ""
    st.markdown(f"**Credit packs**: {(p['share'] * 100).normalize():f} % of the cohort buy `{p['pack']}`{top_up} "
                f"(before tax, {r.currency}; cash at sale against revenue earned as the credit is consumed)")
    st.dataframe(_figures(_pack_rows(p, r.currency), p), hide_index=True)


def _pack_rows(p: dict[str, Any], currency: str) -> list[tuple[str, str]]:
    """The pack rows; a token pack (on either side) labels the credit rows with its unit and
    adds what usage asked beyond the wallets (a money side shows a dash there)."""
    units = [p[side].get("unit") or currency for side in ("baseline", "draft")]
    if units == [currency, currency]:
        return PACK_ROWS
    unit = units[0] if units[0] == units[1] else " / ".join(units)
    rows = [(k, f"{label} ({unit})" if k in ("credit", "consumed", "expired") else label) for k, label in PACK_ROWS]
    return [*rows, ("unburned", f"Usage beyond the wallets, still owed ({unit})")]


def _show_progressive(r: Any) -> None:
    p = r.progressive
    if p is None:
        return
    unchanged = p["baseline"]["unchanged"] and p["draft"]["unchanged"]
    st.markdown("**Progressive billing** (usage taken to arrive evenly, checked daily; before tax): "
                + ("every period's invoices still add up to its quote" if unchanged
                   else "**a period's invoices do not add up to its quote**"))
    st.dataframe(_figures(EARLY_ROWS, p), hide_index=True)


def _lifecycle(
    db: Database,
    source: str,
    baseline: Catalog,
    draft: Catalog,
    spec: SyntheticSpec | None,
    months: int,
    start: Any,
    plan_map: dict[str, str],
) -> None:
    st.caption(
        "The cohort is run through the engine itself on a test clock, in a throwaway database: billing runs, "
        "card payments (declining at the rates below), the dunning rules' retries, warnings, suspensions and "
        "cancellations, and the notification rules. Baseline: the baseline catalog with the live rulesets; "
        "draft: the draft catalog with the ruleset drafts you pick. A cohort larger than a few hundred customers "
        "runs as a stratified random sample (by plan and by the revenue the pricing alone gives each customer), "
        "the same customers on both sides, scaled back up to the whole cohort's priced revenue: the result says "
        "so, with the 95 % margins of cash collected and of the difference. 10,000 customers x 12 months take "
        "a few minutes."
    )
    with db.read_session() as s:
        live, where = crules.live_texts(s)
        ruleset_drafts = {d["name"]: d for d in cstore.list_drafts(s, "ruleset")}
    st.markdown(f"Rulesets ({where}): {', '.join(sorted(live)) or 'none'}")
    months = int(st.number_input("Months (lifecycle)", min_value=1, max_value=24, value=3, key="life_months"))
    a, b, c = st.columns(3)
    fail = a.number_input("Payment failure rate (%)", min_value=0.0, max_value=100.0, value=5.0, key="life_fail")
    recover = b.number_input("Retry success rate (%)", min_value=0.0, max_value=100.0, value=50.0, key="life_recover")
    picked = c.multiselect("Ruleset drafts on the draft side", sorted(ruleset_drafts), key="life_rulesets")
    if st.button("Run lifecycle", key="life_run"):
        draft_rules: dict[str, str] = {}
        with db.read_session() as s:
            for name in picked:
                row = cstore.get_draft(s, "ruleset", name)
                check = cstore.check_stored(s, "ruleset", row.text, ops=console_operations()) if row is not None else None
                if row is None or check is None or check.errors:
                    st.error(f"Ruleset draft {name!r} has errors: fix it in the Editor first.")
                    return
                draft_rules[check.name or name] = row.text
        bar = st.progress(0.0, text="building the cohort…")
        cohort = _cohort(db, source, baseline, draft, spec)
        st.session_state["life_result"] = lifecycle_on_engine(
            lifecycle_system,
            baseline,
            draft,
            cohort,
            rulesets=live,
            draft_rulesets=draft_rules,
            months=months,
            start=start,
            cards=CardModel(failure_rate=fail / 100, recovery_rate=recover / 100),
            plan_map=plan_map,
            progress=lambda f, t: bar.progress(min(f, 1.0), text=t),
        )
        bar.progress(1.0, text="done")
    res = st.session_state.get("life_result")
    if res is None:
        return
    cur = res.currency
    t = res.totals
    if res.sampling:
        margins = res.sampling["collected_margin_95"]
        extra = (
            f" Cash collected is within ±{margins['draft']:,.2f} {cur} (draft), the difference from the baseline "
            f"within ±{margins['delta']:,.2f} {cur}, at 95 %."
            if res.sampling["scaled"]
            else ""
        )
        st.info(f"How these figures were obtained: {res.sampling['sentence']}.{extra}")
    m1, m2, m3 = st.columns(3)
    m1.metric(
        "Cash collected (draft)",
        money(t["draft"]["collected"], cur),
        delta=f"{t['draft']['collected'] - t['baseline']['collected']:+,.2f} vs baseline",
    )
    m2.metric(
        "Invoiced (draft)",
        money(t["draft"]["invoiced"], cur),
        delta=f"{t['draft']['invoiced'] - t['baseline']['invoiced']:+,.2f} vs baseline",
    )
    m3.metric(
        "Notifications (draft)",
        f"{t['draft']['notifications']:,}",
        delta=f"{t['draft']['notifications'] - t['baseline']['notifications']:+,} vs baseline",
    )
    tot = pd.DataFrame(t).T.reset_index(names="catalog")
    st.dataframe(tot.astype(str), hide_index=True)
    rows = pd.DataFrame(res.by_month)
    rows["collected"] = rows["collected"].astype(float)
    st.altair_chart(
        alt.Chart(rows)
        .mark_line(point=True)
        .encode(x="month:O", y=alt.Y("collected:Q", title=f"collected ({cur})"), color="side:N")
        .properties(title="Cash collected per month (by invoice month)", height=260),
        width="stretch",
    )
    st.markdown("**Per month**")
    st.dataframe(rows.astype(str), hide_index=True)
    c1, c2 = st.columns(2)
    c1.markdown("**Notifications (template, channel)**")
    c1.dataframe(pd.DataFrame(res.notifications).fillna(0).astype(int))
    c2.markdown("**Dunning state at the end**")
    c2.dataframe(pd.DataFrame(res.dunning).fillna(0).astype(int))
    st.download_button(
        "Download per month (CSV)", res.months_csv(), "lifecycle_months.csv", "text/csv", key="dl_life_months"
    )
