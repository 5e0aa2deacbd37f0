"""The books: a chart of accounts over the payments journal, the trial balance, exports as CSV
and beancount, and revenue recognition (schedules, report, month close). docs/books.md."""

from engine.payments.books.chart import (
    ChartOfAccounts,
    UnmappedAccount,
    chart_for,
    default_chart,
    load_chart,
    load_chart_text,
)
from engine.payments.books.ledger import TrialBalance, book_lines, trial_balance, write_beancount, write_csv
from engine.payments.books.schedules import UsageAccrual, close_month, currencies, month_end, revenue_report

__all__ = [
    "ChartOfAccounts",
    "TrialBalance",
    "UnmappedAccount",
    "UsageAccrual",
    "book_lines",
    "chart_for",
    "close_month",
    "currencies",
    "default_chart",
    "load_chart",
    "load_chart_text",
    "month_end",
    "revenue_report",
    "trial_balance",
    "write_beancount",
    "write_csv",
]
