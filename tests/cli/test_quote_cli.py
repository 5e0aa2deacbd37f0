"""`billing quote` and `billing validate` as a user runs them: output, exit codes, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.runner import run


def test_quote_json_matches_formats(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys,
        "quote",
        "--catalog",
        "catalogs/saas.yaml",
        "--plan",
        "pro",
        "--quantity",
        "3",
        "--usage",
        "api_calls=15000",
        "--period",
        "2026-11-01/2026-12-01",
        "--json",
    )
    assert code == 0, err
    data = json.loads(out)
    assert data["plan"] == "pro" and data["currency"] == "USD"
    calls = next(x for x in data["lines"] if x["price_id"] == "calls")
    assert calls == {
        **calls,
        "model": "graduated",
        "quantity": "15000",
        "amount": "10.00",
        "tiers": [
            {"tier": 1, "quantity": "10000", "amount": "0.00"},
            {"tier": 2, "quantity": "5000", "amount": "10.00"},
        ],
    }
    assert (data["subtotal"], data["discount"], data["tax"], data["total"]) == ("89.00", "0.00", "0.00", "89.00")
    assert data["rules"] == []


def test_quote_with_coupon_and_country_tax(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "quote",
        "--catalog",
        "catalogs/saas.yaml",
        "--plan",
        "pro",
        "--quantity",
        "2",
        "--coupon",
        "WELCOME20",
        "--customer",
        "country=CH",
        "--period",
        "2026-11-01/2026-12-01",
        "--json",
    )
    data = json.loads(out)
    # 49 + 20 = 69 ; 20% per line: 9.80 + 4.00 = 13.80 ; tax per line on what is left:
    # 39.20 x 8.1% = 3.1752 -> 3.18, 16.00 x 8.1% = 1.296 -> 1.30 ; tax 4.48 ; total 59.68
    assert (data["subtotal"], data["discount"], data["tax"], data["total"]) == ("69.00", "13.80", "4.48", "59.68")
    assert [(x["discount"], x["tax"]) for x in data["lines"]] == [("9.80", "3.18"), ("4.00", "1.30"), ("0.00", "0.00")]


def test_quote_events_file_is_aggregated_by_the_catalog_metrics(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = tmp_path / "usage.jsonl"
    lines = [
        {
            "id": f"e{i}",
            "type": "api.request",
            "customer_id": "c",
            "time": f"2026-11-{1 + i % 28:02d}T10:00:00Z",
            "properties": {},
        }
        for i in range(12000)
    ]
    lines.append(lines[0])  # a repeated id is ignored
    lines.append(
        {
            "id": "g1",
            "type": "gpu.used",
            "customer_id": "c",
            "time": "2026-11-03T00:00:00Z",
            "properties": {"hours": 2.5, "region": "eu"},
        }
    )
    events.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    code, out, err = run(
        capsys, "quote", "--catalog", "catalogs/saas.yaml", "--plan", "enterprise", "--events", str(events), "--json"
    )
    assert code == 0, err
    data = json.loads(out)
    assert data["period"] == {"start": "2026-11-01", "end": "2026-12-01"}  # the month of the first event
    by_id = {x["price_id"]: x for x in data["lines"]}
    assert by_id["calls"]["quantity"] == "12000"
    assert by_id["gpu"]["amount"] == "6.00"  # 2.5 h x 2.40


def test_quote_table_output(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "quote",
        "--catalog",
        "catalogs/saas.yaml",
        "--plan",
        "pro",
        "--usage",
        "api_calls=150000",
        "--period",
        "2026-11-01/2026-12-01",
    )
    assert code == 0
    assert "tier 3" in out and "Total" in out and out.rstrip().endswith("294.00")  # 49 + 10 + 235


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--plan", "gold"], "--plan: unknown plan 'gold'"),
        (["--plan", "pro", "--quantity", "-2"], "--quantity: -2 is negative"),
        (["--plan", "pro", "--usage", "api_calls=-5"], "--usage api_calls: -5 is negative"),
        (["--plan", "pro", "--usage", "clicks=5"], "--usage: unknown metric 'clicks'"),
        (["--plan", "pro", "--usage", "api_calls"], "--usage: 'api_calls' is not KEY=VALUE"),
        (["--plan", "pro", "--coupon", "NOPE"], "--coupon: unknown coupon 'NOPE'"),
        (
            ["--plan", "enterprise", "--coupon", "WELCOME20"],
            "--coupon: coupon WELCOME20 applies to pro, not enterprise",
        ),
        (["--plan", "pro", "--period", "2026-12-01/2026-11-01"], "--period: '2026-12-01/2026-11-01' is not a period"),
        (["--plan", "pro", "--events", "missing.jsonl"], "--events: missing.jsonl"),
    ],
)
def test_bad_input_exits_1_with_the_flag_named_and_prints_no_result(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "quote", "--catalog", "catalogs/saas.yaml", *argv)
    assert code == 1
    assert out == ""
    assert message in err


def test_bad_event_line_names_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = tmp_path / "u.jsonl"
    events.write_text(
        '{"id": "a", "type": "api.request", "time": "2026-11-01T00:00:00Z"}\n'
        '{"id": "b", "type": "api.request", "time": "2026-11-01T00:00:00"}\n'
    )
    code, out, err = run(capsys, "quote", "--catalog", "catalogs/saas.yaml", "--plan", "pro", "--events", str(events))
    assert code == 1 and out == ""
    assert f"{events}:2: time: 2026-11-01T00:00:00 has no timezone" in err


def test_bad_catalog_exits_1_with_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    text = Path("catalogs/saas.yaml").read_text().replace('amount: "49.00"', "amount: 49.00")
    bad.write_text(text)
    line = next(n for n, row in enumerate(text.splitlines(), 1) if "amount: 49.00" in row)
    code, out, err = run(capsys, "quote", "--catalog", str(bad), "--plan", "pro")
    assert code == 1 and out == ""
    assert f"{bad}:{line}: plans.pro.prices[0].amount: 49.0 is a float" in err


def test_validate_lists_all_errors_of_all_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = tmp_path / "a.yaml"
    a.write_text("catalog: a\ncurrency: USD\nplans: {x: {name: X, interval: month, prices: [{id: p, model: flat}]}}\n")
    b = tmp_path / "b.yaml"
    b.write_text("catalog: b\ncurrency: EUR\nplans:\n  y: {name: Y, interval: monthly}\n")
    code, out, err = run(capsys, "validate", str(a), str(b), "catalogs/saas.yaml")
    assert code == 1 and out == ""
    assert f"{a}:3: plans.x.prices[0]: 'amount' is required" in err
    assert f"{b}:4: plans.y.interval: 'monthly' is not one of" in err
    assert "2 error(s)" in err


def test_validate_summarises_valid_files(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "validate", "catalogs/saas.yaml", "catalogs/content.yaml")
    assert code == 0
    assert out.splitlines() == [
        "catalogs/saas.yaml: ok: catalog acme-analytics (USD): 4 plans, 10 prices, 3 metrics, 6 features, 3 coupons",
        "catalogs/content.yaml: ok: catalog pixelvault (EUR): 4 plans, 6 prices, 2 metrics, 3 features, 1 coupons",
    ]


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "quote", "--plan", "pro")
    assert code == 2 and "--catalog" in err


def test_console_script_runs() -> None:
    billing = Path(sys.executable).with_name("billing")
    result = subprocess.run(
        [
            str(billing),
            "quote",
            "--catalog",
            "catalogs/payments.yaml",
            "--plan",
            "starter",
            "--usage",
            "card_volume=1000",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    # one transaction of 1000: 29 + 0.30 = 29.30, capped at 25.00; but the first 500 are free:
    # it crosses the free amount: 2.9% of 500 + 0.30 = 14.80
    assert json.loads(result.stdout)["total"] == "14.80"
