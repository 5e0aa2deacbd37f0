"""Plan builder: create or edit a plan without typing YAML. Every input is checked as it is
typed and its problem shown under it; *Write plan to the draft* changes the draft's YAML (the
Editor's text, comments kept), which stays the source of truth and is shown below. A
comparison table shows the draft's plans as customers would read them."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from engine.console import save_draft
from engine.console import yaml_edit as ye
from engine.console.drafts import check_draft
from engine.console.fields import FieldProblem, FormInvalid
from engine.console.plan_builder import (
    INTERVALS,
    MODELS,
    OVERAGES,
    PERIODS,
    TIERED,
    CatalogContext,
    plan_problems,
    plan_spec,
    write_plan,
)
from engine.console.plan_compare import compare_plans
from engine.console.plan_form import (
    P,
    ent_key,
    fields_from_spec,
    is_field_key,
    price_key,
    spec_from_fields,
    tier_key,
)
from engine.store import Database
from engine.system.console_operations import console_operations
from engine.users import can
from views.common import clock, need
from views.editor import TEXT, open_sources

NEW = "(a new plan)"
# A part period (a start, a change or a cancellation mid-period) of an in-advance price.
PRORATE = {"": "default (by days, in advance)", "true": "charged by days", "false": "charged in full"}
# Which inputs each price model takes (FORMATS §1), besides id, name and model.
MODEL_INPUTS: dict[str, tuple[str, ...]] = {
    "flat": ("timing", "prorate", "amount"),
    "per_unit": ("metric", "timing", "prorate", "unit_amount", "included", "divide_by"),
    "graduated": ("metric", "timing", "prorate", "divide_by"),
    "volume": ("metric", "timing", "prorate", "divide_by"),
    "package": ("metric", "timing", "prorate", "package_size", "amount", "free_units", "divide_by"),
    "graduated_percentage": ("metric",),
    "percentage": (
        "metric",
        "rate",
        "fixed_amount",
        "free_units",
        "free_amount",
        "min_per_transaction",
        "max_per_transaction",
    ),
}
LABELS = {
    "unit_amount": "Unit price",
    "amount": "Amount",
    "included": "Included units (free)",
    "package_size": "Package size",
    "free_units": "Free units",
    "rate": "Rate %",
    "fixed_amount": "Fixed fee per transaction",
    "free_amount": "Free volume",
    "min_per_transaction": "Minimum per transaction",
    "max_per_transaction": "Maximum per transaction",
    "divide_by": "Count in blocks of (transform)",
}


def _marks(problems: list[FieldProblem], field: str) -> None:
    """The problems of one field, in place under it."""
    for p in problems:
        if p.field == field:
            st.error(p.message, icon="⚠️")


def _load(text: str, choice: str) -> None:
    """A callback (runs before the inputs are drawn, so it may set them)."""
    for key in [k for k in st.session_state if is_field_key(str(k))]:
        del st.session_state[key]
    if choice == NEW:
        st.session_state.update({f"{P}n_prices": 0, f"{P}n_ents": 0, f"{P}original": None, f"{P}interval": "month"})
    else:
        st.session_state.update(fields_from_spec(plan_spec(text, choice)))
        st.session_state[f"{P}original"] = choice


def _write() -> None:
    spec = spec_from_fields(st.session_state)
    try:
        st.session_state[TEXT] = write_plan(
            st.session_state.get(TEXT, ""), spec, original_id=st.session_state.get(f"{P}original")
        )
    except FormInvalid as exc:
        st.session_state["pb_message"] = ("error", f"Not written: {len(exc.problems)} problem(s), marked above.")
        return
    st.session_state[f"{P}original"] = spec.id
    st.session_state["pb_message"] = ("success", f"Plan {spec.id} written to the draft's YAML.")


def render(db: Database, user: dict[str, Any]) -> None:
    st.header("Plan builder")
    if st.session_state.get("editor_kind", "catalog") != "catalog" or not st.session_state.get(TEXT, "").strip():
        open_sources(db, "catalog", key="pb_source")
        if st.session_state.get("editor_kind", "catalog") != "catalog":
            return
    text = st.session_state.get(TEXT, "")
    try:
        data = ye.load(text) if text.strip() else None
    except ye.EditError as exc:
        st.error(f"{exc} (in the Editor)")
        return
    if data is None:
        st.info("Open a catalog draft, a published catalog or an example file to add plans to.")
        return
    ctx = CatalogContext.of(data)
    if not can(user["role"], "edit"):
        need(user, "edit", "Building plans")
    else:
        _builder(db, user, text, ctx)
    _comparison(text)
    with st.expander("The draft's YAML (the source of truth)", expanded=False):
        st.code(st.session_state.get(TEXT, ""), language="yaml", line_numbers=True)


def _builder(db: Database, user: dict[str, Any], text: str, ctx: CatalogContext) -> None:
    c1, c2 = st.columns([4, 1])
    choice = c1.selectbox("Plan", [NEW, *sorted(ctx.plans)], key="pb_choice")
    c2.button("Load", key="pb_load", on_click=_load, args=(text, choice))
    if f"{P}n_prices" not in st.session_state:
        _load(text, NEW)
    problems = plan_problems(spec_from_fields(st.session_state), ctx)
    _plan_inputs(ctx, problems)
    _price_inputs(ctx, problems)
    _entitlement_inputs(ctx, problems)
    if problems:
        st.warning(f"{len(problems)} problem(s), each marked under its field: the plan cannot be written yet.")
    st.button("Write plan to the draft", key="pb_write", on_click=_write, type="primary")
    msg = st.session_state.pop("pb_message", None)
    if msg:
        getattr(st, msg[0])(msg[1])
    if st.button("Save draft", key="pb_save"):
        name = str(ye.load(st.session_state[TEXT]).get("catalog") or "")
        with db.session() as s:
            save_draft(s, user, "catalog", name, st.session_state[TEXT], ops=console_operations(), clock=clock())
        st.success(f"Saved draft {name}.")


def _plan_inputs(ctx: CatalogContext, problems: list[FieldProblem]) -> None:
    st.subheader("The plan")
    a, b, c = st.columns(3)
    with a:
        st.text_input("Plan id", key=f"{P}id", help="lower case, e.g. team")
        _marks(problems, "id")
        st.text_input("Name customers see", key=f"{P}name")
        _marks(problems, "name")
    with b:
        st.selectbox("Billed every", INTERVALS, key=f"{P}interval")
        st.text_input("Free trial (days)", key=f"{P}trial_days")
        _marks(problems, "trial_days")
    with c:
        st.text_input(f"Minimum commitment per period ({ctx.currency})", key=f"{P}minimum_amount")
        _marks(problems, "minimum_amount")
        others = sorted(ctx.plans - {st.session_state.get(f"{P}original") or ""})
        st.session_state[f"{P}upgrade_to"] = [p for p in st.session_state.get(f"{P}upgrade_to", []) if p in others]
        st.multiselect("Upgrades to", others, key=f"{P}upgrade_to")
        for p in problems:
            if p.field.startswith("upgrade_to"):
                st.error(p.message, icon="⚠️")


def _add_price() -> None:
    n = int(st.session_state.get(f"{P}n_prices", 0))
    st.session_state[price_key(n, "model")] = "flat"
    st.session_state[price_key(n, "round")] = "up"
    st.session_state[price_key(n, "n_tiers")] = 0
    st.session_state[f"{P}n_prices"] = n + 1


def _remove_price(i: int) -> None:
    spec = spec_from_fields(st.session_state)
    del spec.prices[i]
    original = st.session_state.get(f"{P}original")
    for key in [k for k in st.session_state if is_field_key(str(k))]:
        del st.session_state[key]
    st.session_state.update(fields_from_spec(spec))
    st.session_state[f"{P}original"] = original


def _price_inputs(ctx: CatalogContext, problems: list[FieldProblem]) -> None:
    st.subheader("Prices")
    for i in range(int(st.session_state.get(f"{P}n_prices", 0))):
        with st.container(border=True):
            _price(i, ctx, problems)
    st.button("Add a price", key="pb_add_price", on_click=_add_price)


def _price(i: int, ctx: CatalogContext, problems: list[FieldProblem]) -> None:
    where = f"prices[{i + 1}]"
    a, b, c, d = st.columns([2, 3, 2, 1])
    a.text_input(f"Price {i + 1} id", key=price_key(i, "id"))
    b.text_input(f"Price {i + 1} name", key=price_key(i, "name"))
    model = c.selectbox(f"Price {i + 1} model", MODELS, key=price_key(i, "model"))
    d.button("Remove", key=f"pb_remove_{i}", on_click=_remove_price, args=(i,))
    _marks(problems, f"{where}.id")
    _marks(problems, f"{where}.model")
    inputs = MODEL_INPUTS.get(model, ())
    cols = st.columns(4)
    for n, name in enumerate(x for x in inputs if x != "divide_by"):
        with cols[n % 4]:
            if name == "metric":
                metrics = ["", *sorted(ctx.metrics)]
                st.selectbox(f"Price {i + 1} metric (empty: the seats)", metrics, key=price_key(i, "metric"))
            elif name == "timing":
                st.selectbox(
                    f"Price {i + 1} billed",
                    ["", "in_advance", "in_arrears"],
                    key=price_key(i, "timing"),
                    format_func=lambda t: t or "default",
                )
            elif name == "prorate":
                st.selectbox(
                    f"Price {i + 1} part periods",
                    ["", "true", "false"],
                    key=price_key(i, "prorate"),
                    format_func=PRORATE.__getitem__,
                )
            else:
                st.text_input(f"Price {i + 1} {LABELS.get(name, name).lower()}", key=price_key(i, name))
            _marks(problems, f"{where}.{name}")
    if "divide_by" in inputs:
        e, f = st.columns(2)
        e.text_input(f"Price {i + 1} count in blocks of (empty: none)", key=price_key(i, "divide_by"))
        f.selectbox(f"Price {i + 1} round blocks", ["up", "down"], key=price_key(i, "round"))
        _marks(problems, f"{where}.divide_by")
    if model in TIERED:
        _tiers(i, model, problems)


def _add_tier(i: int) -> None:
    key = price_key(i, "n_tiers")
    st.session_state[key] = int(st.session_state.get(key, 0)) + 1


def _drop_tier(i: int) -> None:
    key = price_key(i, "n_tiers")
    st.session_state[key] = max(int(st.session_state.get(key, 0)) - 1, 0)


def _tiers(i: int, model: str, problems: list[FieldProblem]) -> None:
    """A table of tiers, one row of inputs each; a row's problems right under it."""
    where = f"prices[{i + 1}].tiers"
    columns = (
        ("up_to", "rate", "flat_amount") if model == "graduated_percentage" else ("up_to", "unit_amount", "flat_amount")
    )
    names = {
        "up_to": "up to (empty: and above)",
        "unit_amount": "unit price",
        "flat_amount": "flat fee",
        "rate": "rate %",
    }
    if int(st.session_state.get(price_key(i, "n_tiers"), 0)) == 0:
        st.session_state[price_key(i, "n_tiers")] = 1
    for j in range(int(st.session_state[price_key(i, "n_tiers")])):
        cols = st.columns([1, 3, 3, 3])
        cols[0].markdown(f"**Tier {j + 1}**")
        for col, name in zip(cols[1:], columns, strict=True):
            col.text_input(f"Price {i + 1} tier {j + 1} {names[name]}", key=tier_key(i, j, name))
        for p in problems:
            if p.field.startswith(f"{where}[{j + 1}]"):
                st.error(f"Tier {j + 1} {p.field.rsplit('.', 1)[-1].replace('_', ' ')}: {p.message}", icon="⚠️")
    _marks(problems, where)
    a, b = st.columns(2)
    a.button("Add a tier", key=f"pb_add_tier_{i}", on_click=_add_tier, args=(i,))
    b.button("Remove the last tier", key=f"pb_drop_tier_{i}", on_click=_drop_tier, args=(i,))


def _add_entitlement() -> None:
    n = int(st.session_state.get(f"{P}n_ents", 0))
    st.session_state.update(
        {
            ent_key(n, "value"): "true",
            ent_key(n, "period"): "month",
            ent_key(n, "overage"): "block",
            f"{P}n_ents": n + 1,
        }
    )


def _entitlement_inputs(ctx: CatalogContext, problems: list[FieldProblem]) -> None:
    st.subheader("Features (entitlements)")
    features = sorted(ctx.features)
    for i in range(int(st.session_state.get(f"{P}n_ents", 0))):
        where = f"entitlements[{i + 1}]"
        cols = st.columns(4)
        fid = cols[0].selectbox(f"Feature {i + 1}", features, key=ent_key(i, "feature"))
        ftype = ctx.features.get(fid or "", "")
        if ftype == "metered":
            cols[1].text_input(f"Feature {i + 1} limit (empty: unlimited)", key=ent_key(i, "limit"))
            cols[2].selectbox(f"Feature {i + 1} per", PERIODS, key=ent_key(i, "period"))
            cols[3].selectbox(f"Feature {i + 1} over the limit", OVERAGES, key=ent_key(i, "overage"))
        elif ftype == "quantity":
            cols[1].text_input(f"Feature {i + 1} how many (empty: unlimited)", key=ent_key(i, "value"))
        else:
            if st.session_state.get(ent_key(i, "value")) not in ("true", "false"):
                st.session_state[ent_key(i, "value")] = "true"
            cols[1].selectbox(f"Feature {i + 1} included", ["true", "false"], key=ent_key(i, "value"))
        for p in problems:
            if p.field.startswith(where):
                st.error(p.message, icon="⚠️")
    st.button("Add a feature", key="pb_add_ent", on_click=_add_entitlement, disabled=not features)


def _comparison(text: str) -> None:
    st.subheader("Compare plans as customers see them")
    check = check_draft("catalog", text)
    if check.catalog is None:
        st.info("The draft has errors (see the Editor): fix them to compare its plans.")
        return
    plans = list(check.catalog.plans)
    chosen = st.multiselect("Plans", plans, default=plans[:3], key="pb_compare")
    if chosen:
        st.dataframe(pd.DataFrame(compare_plans(check.catalog, chosen)), hide_index=True, width="stretch")
