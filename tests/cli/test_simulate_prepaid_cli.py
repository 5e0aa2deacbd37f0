"""`billing simulate` (in-process, as a pricing manager runs it) prices credit packs and
progressive thresholds: the figures worked out by hand in tests/simulation/
test_prepaid_progressive.py, through the door, as JSON and as text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.store import Database
from tests.cli.runner import database, run
from tests.simulation.test_prepaid_progressive import CATALOG, PROGRESSIVE

__all__ = ["database"]


def _catalogs(tmp_path: Path) -> tuple[str, str]:
    (tmp_path / "baseline.yaml").write_text(CATALOG)
    (tmp_path / "draft.yaml").write_text(PROGRESSIVE)
    return str(tmp_path / "baseline.yaml"), str(tmp_path / "draft.yaml")


def _simulate(capsys: pytest.CaptureFixture[str], tmp_path: Path, *extra: str) -> tuple[int, str, str]:
    baseline, draft = _catalogs(tmp_path)
    capsys.readouterr()  # what the database fixture printed
    return run(capsys, "simulate", "--baseline", baseline, "--draft", draft, "--customers", "2",
               "--usage", "api_calls=120", "--months", "1", "--start", "2027-01-01", "--rules", "none", *extra)


def test_packs_and_progressive_invoices_in_the_json(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                    database: Database) -> None:
    code, out, err = _simulate(capsys, tmp_path, "--prepaid", "100%:starter", "--json")
    assert code == 0, err
    r = json.loads(out)
    # Two customers, 120 calls each in January: 10.00 + 50.00 + 5.00 = 65.00 a bill. Each
    # pack (45.00 for 50.00) pays 50.00 of it; 15.00 each is collected: both ran out.
    assert r["prepaid"]["baseline"] == r["prepaid"]["draft"] == {
        "customers": 2, "packs_sold": 2, "top_ups": 0, "sold": "90.00", "credit": "100.00",
        "consumed": "100.00", "earned": "90.00", "expired": "0", "breakage": "0", "deferred": "0.00",
        "collected": "30.00", "ran_out": 2}
    # The draft's thresholds (20.00, 50.00): two interim invoices a customer, 50.25 early each,
    # and each period still totals its quote, 65.00.
    assert r["progressive"]["baseline"]["invoices"] == 0
    assert r["progressive"]["draft"] == {
        "customers": 2, "periods": 2, "invoices": 4, "billed_early": "100.50", "period_total": "130.00",
        "quote_total": "130.00", "unchanged": True}
    assert r["totals"]["baseline"] == r["totals"]["draft"] == "130.00"


def test_the_text_report_and_a_bad_pack(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                        database: Database) -> None:
    code, out, err = _simulate(capsys, tmp_path, "--prepaid", "50%:starter:top-up")
    assert code == 0, err
    assert "prepaid: 50% of the cohort buy pack starter with the automatic top-up" in out
    assert "progressive draft: 4 invoices for 2 customers in 2 periods, billed_early=100.50; " \
           "those periods total 130.00, their quotes 130.00 (unchanged)" in out
    code, out, err = _simulate(capsys, tmp_path, "--prepaid", "30%:gold")
    assert code == 1 and out == ""
    assert "prepaid.pack: 'gold' is not a credit pack of the baseline catalog" in err
    code, out, err = _simulate(capsys, tmp_path, "--prepaid", "150%:starter")
    assert code == 1 and "--prepaid: '150%' must be more than 0% and at most 100%" in err


def test_a_token_pack_through_the_door(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                       database: Database) -> None:
    """The token catalog of test_prepaid_progressive (10 tokens a call, 1000 for 3.00, top-up
    below 200): two customers, 60 calls a month for three months, both sides the same. Each
    burns 600 a month; in February 200 are owed, a top-up is bought and pays them first; March
    leaves 200. The refusal of a custom-unit pack is gone."""
    from tests.simulation.test_prepaid_progressive import TOKENS

    (tmp_path / "tokens.yaml").write_text(TOKENS)
    capsys.readouterr()
    path = str(tmp_path / "tokens.yaml")
    args = ("simulate", "--baseline", path, "--draft", path, "--customers", "2", "--usage", "api_calls=60",
            "--months", "3", "--start", "2027-01-01", "--rules", "none", "--prepaid", "100%:small:top-up")
    code, out, err = run(capsys, *args, "--json")
    assert code == 0, err
    b = json.loads(out)["prepaid"]["baseline"]
    assert (b["packs_sold"], b["top_ups"], b["sold"], b["credit"], b["consumed"], b["earned"], b["deferred"]) == (
        4, 2, "12.00", "4000", "3600", "10.80", "1.20")
    assert (b["unit"], b["unburned"], b["collected"], b["ran_out"]) == ("tokens", "0", "0", 0)
    code, out, err = run(capsys, *args)
    assert code == 0, err
    assert "in tokens: credit, consumed, expired; unburned=0 tokens still owed" in out
