"""The chart of accounts: where each posting of the engine's journal goes in the books.

The journal (engine/payments/journal.py) posts to *logical* accounts that name what happened
("revenue:pro:usage", "tax_payable:CH", "cash:stripe"); a chart, declared in YAML and checked
against chart.schema.json, maps every one of them to a ledger account ("Income:Revenue:Usage").
A chart that would leave a posting without an account is refused when it is loaded, with the
file, line and field, like a catalog.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from engine.documents import Document, DocumentError, Problem, load_yaml_file, load_yaml_text, schema_problems

SCHEMA_PACKAGE = "engine.payments.books.schemas"
SCHEMA_NAME = "chart.schema.json"
PRICE_TYPES = ("subscription", "usage", "one_time")
# The providers whose money the engine itself records: a chart must place each one's cash.
KNOWN_PROVIDERS = ("sandbox", "stripe", "bank", "manual")
# Logical accounts named by a fixed key of `accounts:` (the journal's names on the left).
FIXED = {
    "receivables": "receivables",
    "customer_credit": "customer_credit",
    "deferred_revenue": "deferred_revenue",
    "discounts": "discounts",
    "refunds": "refunds",
    "credit_notes": "credit_notes",
    "bad_debt": "write_offs",
    "provider_fees": "provider_fees",
    "bank_charges": "bank_charges",
    "unbilled_revenue": "unbilled_revenue",
}
# Optional fixed accounts, and where a chart that does not name one places its postings:
# revenue earned and not invoiced yet is an asset like a receivable.
FALLBACK = {"unbilled_revenue": "receivables"}


class UnmappedAccount(ValueError):
    """A journal account the chart has no place for: nothing is exported or posted."""

    def __init__(self, account: str, chart: str) -> None:
        super().__init__(f"chart {chart!r} has no account for the journal's {account!r}")
        self.account = account


@dataclass(frozen=True)
class ChartOfAccounts:
    name: str
    accounts: dict[str, str]  # FIXED keys -> ledger account
    revenue: dict[str, str]  # price type -> ledger account
    plan_revenue: dict[str, dict[str, str]]  # plan -> price type -> ledger account
    taxes_default: str
    taxes: dict[str, str]  # ISO country -> ledger account
    cash_default: str | None
    cash: dict[str, str]  # provider -> ledger account
    bank_accounts: dict[str, str]  # IBAN / account id -> ledger account
    # provider -> the bank account (a key of bank_accounts) its payouts are paid to: a
    # settlement file does not say, so the chart does (docs/books.md, *Provider payouts*).
    payouts: dict[str, str] = field(default_factory=dict)

    def account_for(self, logical: str) -> str:
        """The ledger account of a journal account; UnmappedAccount when the chart has none."""
        kind, _, rest = logical.partition(":")
        if kind in FIXED and not rest:
            key = FIXED[kind]
            return self.accounts.get(key) or self.accounts[FALLBACK.get(key, key)]
        if kind == "revenue":
            plan, _, price_type = rest.partition(":")
            return self.revenue_account(plan, price_type or "subscription")
        if kind == "tax_payable":
            return self.taxes.get(rest, self.taxes_default)
        if kind == "cash":
            found = self._cash(rest)
            if found is not None:
                return found
        raise UnmappedAccount(logical, self.name)

    def revenue_account(self, plan: str, price_type: str) -> str:
        if price_type not in PRICE_TYPES:
            raise UnmappedAccount(f"revenue:{plan}:{price_type}", self.name)
        return self.plan_revenue.get(plan, {}).get(price_type, self.revenue[price_type])

    def _cash(self, rest: str) -> str | None:
        provider, _, bank_account = rest.partition(":")
        if provider == "bank" and bank_account in self.bank_accounts:
            return self.bank_accounts[bank_account]
        return self.cash.get(provider, self.cash_default)

    def all_accounts(self) -> set[str]:
        out = set(self.accounts.values()) | set(self.revenue.values()) | set(self.taxes.values())
        out |= {a for by_type in self.plan_revenue.values() for a in by_type.values()}
        out |= set(self.cash.values()) | set(self.bank_accounts.values()) | {self.taxes_default}
        return out | ({self.cash_default} if self.cash_default else set())


def _coverage_problems(doc: Document, providers: Iterable[str]) -> list[Problem]:
    """What the schema cannot see: a provider whose cash would have no account, a payout to a
    bank account the chart does not keep."""
    cash = doc.data.get("cash") or {}
    providers = list(providers)
    out = _payout_problems(doc, cash, providers)
    if cash.get("default"):
        return out
    known = cash.get("providers") or {}
    return out + [doc.problem(["cash", "providers"], f"no account for provider {p!r} and no cash.default: "
                              f"its payments would be posted nowhere") for p in providers if p not in known]


def _payout_problems(doc: Document, cash: dict[str, Any], providers: list[str]) -> list[Problem]:
    """Each `cash.payouts` entry names a provider the engine records money for and a bank account
    of `cash.bank_accounts`: a payout posted to an account the books do not keep would land on
    the bank's catch-all, which is what declaring it is meant to avoid."""
    banks = cash.get("bank_accounts") or {}
    out = []
    for provider, account in (cash.get("payouts") or {}).items():
        where = ["cash", "payouts", provider]
        if provider not in providers:
            out.append(doc.problem(where, f"unknown provider {provider!r}: one of {', '.join(providers)}"))
        elif account not in banks:
            out.append(doc.problem(where, f"bank account {account!r} is not in cash.bank_accounts: its payouts "
                                   f"would be posted to an account the books do not keep"))
    return out


def chart_from_document(doc: Document, providers: Iterable[str] = KNOWN_PROVIDERS) -> ChartOfAccounts:
    if not isinstance(doc.data, dict):
        raise DocumentError([doc.problem([], "a chart of accounts is a mapping (chart, accounts, revenue, ...)")])
    problems = schema_problems(doc, SCHEMA_PACKAGE, SCHEMA_NAME) or _coverage_problems(doc, providers)
    if problems:
        raise DocumentError(problems)
    data: dict[str, Any] = doc.data
    cash = data["cash"]
    return ChartOfAccounts(
        name=data["chart"],
        accounts=dict(data["accounts"]),
        revenue={t: data["revenue"][t] for t in PRICE_TYPES},
        plan_revenue={p: dict(v) for p, v in (data["revenue"].get("plans") or {}).items()},
        taxes_default=data["taxes_payable"]["default"],
        taxes=dict(data["taxes_payable"].get("countries") or {}),
        cash_default=cash.get("default"),
        cash=dict(cash["providers"]),
        bank_accounts=dict(cash.get("bank_accounts") or {}),
        payouts=dict(cash.get("payouts") or {}),
    )


def load_chart(path: str | Path, providers: Iterable[str] = KNOWN_PROVIDERS) -> ChartOfAccounts:
    return chart_from_document(load_yaml_file(path), providers)


def load_chart_text(text: str, file: str = "<chart>", providers: Iterable[str] = KNOWN_PROVIDERS) -> ChartOfAccounts:
    return chart_from_document(load_yaml_text(text, file), providers)


def default_chart() -> ChartOfAccounts:
    """The chart shipped with the engine (engine/payments/books/chart.yaml)."""
    text = resources.files("engine.payments.books").joinpath("chart.yaml").read_text("utf-8")
    return load_chart_text(text, "chart.yaml")


def chart_for(path: str | None) -> ChartOfAccounts:
    """The chart a deployment names (BILLING_CHART_OF_ACCOUNTS), or the shipped one."""
    return load_chart(path) if path else default_chart()
