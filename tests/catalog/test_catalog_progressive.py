"""A plan's progressive billing thresholds: bad input named by file:line: path, the whole
catalog refused (the shape itself is read in test_catalog_credits.py)."""

from __future__ import annotations

from tests.catalog.test_catalog_credits import BASE, errors

LINE = 'progressive_billing: {thresholds: ["100.00", "500.00"], then_every: "1000.00"}'
WHERE = "bad.yaml:10: plans.pro.progressive_billing"


def _with(progressive: str) -> str:
    assert LINE in BASE
    return BASE.replace(LINE, f"progressive_billing: {progressive}")


def test_unsorted_thresholds_are_refused() -> None:
    assert errors(_with('{thresholds: ["100.00", "500.00", "300.00"]}')) == [
        f"{WHERE}.thresholds[2]: thresholds ascend above zero: 300.00 is not above 500.00"]


def test_a_repeated_threshold_is_refused() -> None:
    assert errors(_with('{thresholds: ["100.00", "100.00"]}')) == [
        f"{WHERE}.thresholds[1]: thresholds ascend above zero: 100.00 is not above 100.00"]


def test_a_zero_threshold_is_refused() -> None:
    assert errors(_with('{thresholds: ["0", "500.00"]}')) == [
        f"{WHERE}.thresholds[0]: thresholds ascend above zero: 0 is not above 0"]


def test_a_zero_then_every_is_refused() -> None:
    assert errors(_with('{thresholds: ["100.00"], then_every: "0.00"}')) == [
        f"{WHERE}.then_every: '0.00' must be above zero"]


def test_a_negative_threshold_is_refused() -> None:
    [problem] = errors(_with('{thresholds: ["-100.00"]}'))
    assert problem.startswith(f"{WHERE}.thresholds[0]: ")


def test_a_float_threshold_is_refused() -> None:
    assert errors(_with('{thresholds: [100.5]}')) == [
        f'{WHERE}.thresholds[0]: 100.5 is a float; amounts are decimal strings, write it quoted, e.g. "100.50"']


def test_no_thresholds_is_refused() -> None:
    [problem] = errors(_with("{thresholds: []}"))
    assert problem.startswith(f"{WHERE}.thresholds: ")


def test_a_one_time_plan_cannot_bill_progressively() -> None:
    assert errors(BASE.replace("interval: month", "interval: once")) == [
        f"{WHERE}: a one-time plan has no period to bill progressively"]
