"""The chart of accounts: the shipped one maps every journal account; a chart that would leave a
posting without an account, or that is malformed, is refused with file, line and field."""

from __future__ import annotations

import pytest

from engine.documents import DocumentError
from engine.payments.books.chart import UnmappedAccount, default_chart, load_chart_text

BASE = """\
chart: test
accounts:
  receivables: Assets:Receivables
  customer_credit: Liabilities:CustomerCredit
  deferred_revenue: Liabilities:DeferredRevenue
  discounts: Income:Discounts
  refunds: Income:Refunds
  credit_notes: Income:CreditNotes
  write_offs: Expenses:BadDebt
  provider_fees: Expenses:Fees
  bank_charges: Expenses:BankCharges
revenue:
  subscription: Income:Subscriptions
  usage: Income:Usage
  one_time: Income:OneTime
  plans:
    pro: {usage: Income:Pro:Usage}
taxes_payable:
  default: Liabilities:Tax:Other
  countries: {CH: Liabilities:Tax:CH}
cash:
  providers: {sandbox: Assets:Sandbox, stripe: Assets:Stripe, bank: Assets:Bank, manual: Assets:Till}
  bank_accounts: {CH9300762011623852957: Assets:Bank:UBS}
"""


def test_shipped_chart_maps_every_kind_of_posting() -> None:
    chart = default_chart()
    assert chart.account_for("receivables") == "Assets:Receivables"
    assert chart.account_for("revenue:pro:usage") == "Income:Revenue:Usage"
    assert chart.account_for("revenue:enterprise:usage") == "Income:Revenue:Enterprise:Usage"
    assert chart.account_for("revenue:unassigned") == "Income:Revenue:Subscriptions"
    assert chart.account_for("tax_payable:CH") == "Liabilities:TaxPayable:CH"
    assert chart.account_for("tax_payable:FR") == "Liabilities:TaxPayable:Other"
    assert chart.account_for("tax_payable") == "Liabilities:TaxPayable:Other"
    assert chart.account_for("bad_debt") == "Expenses:BadDebt"
    assert chart.account_for("cash:stripe") == "Assets:Cash:Stripe"
    assert chart.account_for("cash:paypal-like") == "Assets:Cash:Other"
    assert chart.account_for("unbilled_revenue") == "Assets:UnbilledRevenue"


def test_plan_and_bank_account_overrides() -> None:
    chart = load_chart_text(BASE, "books.yaml")
    assert chart.account_for("revenue:pro:usage") == "Income:Pro:Usage"
    assert chart.account_for("revenue:pro:subscription") == "Income:Subscriptions"
    assert chart.account_for("cash:bank:CH9300762011623852957") == "Assets:Bank:UBS"
    assert chart.account_for("cash:bank:other") == "Assets:Bank"
    # unbilled_revenue is optional: a chart without it books the accrual with receivables.
    assert chart.account_for("unbilled_revenue") == "Assets:Receivables"
    with pytest.raises(UnmappedAccount, match="'cash:adyen'"):
        chart.account_for("cash:adyen")  # no cash.default: a provider not listed has no account
    with pytest.raises(UnmappedAccount, match="'mystery'"):
        chart.account_for("mystery")


def test_a_chart_leaving_a_provider_without_cash_account_is_refused() -> None:
    text = BASE.replace(" manual: Assets:Till", " other: Assets:Other")
    with pytest.raises(DocumentError) as err:
        load_chart_text(text, "books.yaml")
    assert str(err.value) == ("books.yaml:22: cash.providers: no account for provider 'manual' and no "
                              "cash.default: its payments would be posted nowhere")


def test_a_missing_account_is_named_with_file_and_line() -> None:
    text = BASE.replace("  write_offs: Expenses:BadDebt\n", "")
    with pytest.raises(DocumentError) as err:
        load_chart_text(text, "books.yaml")
    assert str(err.value) == "books.yaml:2: accounts: 'write_offs' is required"


def test_a_bad_account_name_and_an_unknown_key_are_each_reported() -> None:
    text = BASE.replace("Income:Usage", "income usage").replace("taxes_payable:", "taxes:")
    with pytest.raises(DocumentError) as err:
        load_chart_text(text, "books.yaml")
    messages = [str(p) for p in err.value.problems]
    assert any(m.startswith("books.yaml:14: revenue.usage: 'income usage' does not match the expected form") for m in messages), messages
    assert "books.yaml:18: taxes: unknown field 'taxes'" in messages
    assert "books.yaml:1: (document): 'taxes_payable' is required" in messages


def test_payouts_name_a_kept_bank_account_of_a_known_provider() -> None:
    """`cash.payouts`: the bank account each provider pays out to (a settlement file does not
    say); an account the chart does not keep, or a provider the engine does not know, is refused
    with file, line and field, every problem at once."""
    chart = load_chart_text(BASE + "  payouts: {stripe: CH9300762011623852957}\n", "books.yaml")
    assert chart.payouts == {"stripe": "CH9300762011623852957"}
    assert load_chart_text(BASE, "books.yaml").payouts == {}
    with pytest.raises(DocumentError) as err:
        load_chart_text(BASE + "  payouts: {stripe: DE89370400440532013000, adyen: CH9300762011623852957}\n",
                        "books.yaml")
    assert [str(p) for p in err.value.problems] == [
        "books.yaml:24: cash.payouts.stripe: bank account 'DE89370400440532013000' is not in cash.bank_accounts: "
        "its payouts would be posted to an account the books do not keep",
        "books.yaml:24: cash.payouts.adyen: unknown provider 'adyen': one of sandbox, stripe, bank, manual"]
