"""Tests for tuneforge.tune.pareto: the front on hand-made points, the table and the plot."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tuneforge.tune.pareto import COST_FIELDS, dominates, pareto_front, render_pareto_table, save_pareto_plot


def rec(trial_id: str, metric: float | None, params: float | None, **extra: object) -> dict[str, object]:
    return {"trial_id": trial_id, "metric": metric, "trainable_params": params, **extra}


# Quality (lower is better) vs trainable params:
#   a: 2.0 @ 1000   on the front (cheapest)
#   b: 1.5 @ 5000   on the front
#   c: 1.8 @ 6000   dominated by b (worse and dearer)
#   d: 1.0 @ 90000  on the front (best)
#   e: 2.5 @ 1000   dominated by a (same cost, worse)
#   f: 1.5 @ 7000   dominated by b (same quality, dearer)
POINTS = [
    rec("c", 1.8, 6000),
    rec("a", 2.0, 1000),
    rec("d", 1.0, 90000),
    rec("b", 1.5, 5000),
    rec("e", 2.5, 1000),
    rec("f", 1.5, 7000),
]


def ids(records: list) -> list[str]:
    return [r["trial_id"] for r in records]


def test_front_excludes_dominated_points_and_is_sorted_by_cost() -> None:
    assert ids(pareto_front(POINTS)) == ["a", "b", "d"]


def test_ties_are_kept() -> None:
    twins = [rec("x", 1.5, 100), rec("y", 1.5, 100), rec("z", 1.6, 100)]
    assert ids(pareto_front(twins)) == ["x", "y"]  # identical points dominate neither each other


def test_max_direction_flips_quality_not_cost() -> None:
    accuracy = [rec("a", 0.60, 10), rec("b", 0.70, 20), rec("c", 0.65, 30), rec("d", 0.90, 40)]
    assert ids(pareto_front(accuracy, direction="max")) == ["a", "b", "d"]
    assert ids(pareto_front(accuracy, direction="min")) == ["a"]  # min: the cheapest is also the lowest
    assert dominates(accuracy[1], accuracy[2], direction="max")
    assert not dominates(accuracy[2], accuracy[1], direction="max")


def test_cost_field_and_metric_key_are_chosen() -> None:
    records = [
        {"trial_id": "lora", "eval_loss": 2.0, "trainable_params": 10, "wall_s": 50.0},
        {"trial_id": "full", "eval_loss": 1.9, "trainable_params": 1000, "wall_s": 40.0},
    ]
    assert ids(pareto_front(records, metric="eval_loss", cost="trainable_params")) == ["lora", "full"]
    assert ids(pareto_front(records, metric="eval_loss", cost="wall_s")) == ["full"]  # faster and better


def test_records_without_metric_or_cost_are_left_out() -> None:
    records = [*POINTS, rec("failed", None, 10), rec("nan", math.nan, 10), rec("nocost", 0.1, None)]
    assert ids(pareto_front(records)) == ["a", "b", "d"]
    assert pareto_front([]) == []


def test_bad_direction_is_rejected() -> None:
    with pytest.raises(ValueError, match="direction"):
        pareto_front(POINTS, direction="lowest")  # type: ignore[arg-type]


def test_table_marks_the_front_first() -> None:
    records = [{**r, "method": "lora", "adapter_bytes": 3 * 1024 * 1024, "wall_s": 12.34} for r in POINTS]
    text = render_pareto_table(records, title="sweep")
    lines = [line for line in text.splitlines() if any(f" {t} " in line for t in "abcdef")]
    assert [line.split("│")[2].strip() for line in lines] == ["a", "b", "d", "e", "c", "f"]
    assert all(line.split("│")[1].strip() == "*" for line in lines[:3])
    assert all(line.split("│")[1].strip() == "" for line in lines[3:])
    assert "sweep" in text and "3.0 MiB" in text and "12.3 s" in text and "90.00k" in text
    assert "trainable_params *" in text  # the cost column of the front is flagged


def test_plot_is_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    records = [
        {**r, "method": m}
        for r, m in zip(POINTS, ["lora", "full", "full", "lora", "lora", "full"], strict=True)
    ]
    out = save_pareto_plot(records, tmp_path / "plots" / "front.png", title="tiny")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 5000
    empty = save_pareto_plot([rec("x", None, None)], tmp_path / "empty.png")  # nothing usable still plots
    assert empty.exists()


def test_cost_fields_are_the_documented_ones() -> None:
    assert COST_FIELDS == ("trainable_params", "adapter_bytes", "train_tokens", "wall_s", "peak_mem_bytes")
