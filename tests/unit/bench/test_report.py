"""The report: ratios against the plain loop, MFU per peak, the issue's targets, and the tables."""

from __future__ import annotations

from typing import Any

import pytest
from rich.console import Console

from tuneforge.bench.report import add_ratios, path_entry, phase_table, summary_lines, table, targets

PEAK = {"device": "cpu", "threads": 2, "peak_float32": 2e11, "peak_bfloat16": 4e11, "device_peak_bf16": None}


def _report(full_rate: float, first_step: float, model: str = "tiny") -> dict[str, Any]:
    paths = {
        "plain": path_entry([100.0, 110.0, 90.0], 4070, 4096, 1e9, 1e6, PEAK),
        "padded": path_entry([40.0], 1000, 2600, 1e9, 1e6, PEAK),
        "hf": path_entry([105.0], 4070, 4096, 1e9, 1e6, PEAK),
        "full_1": path_entry([full_rate], 0.995, 1.0, 1e9, 1e6, PEAK),
    }
    paths["full_1"].update(
        workers=1,
        seconds_to_first_step=first_step,
        seconds_to_end=first_step + 5,
        phase_seconds={"Ray start": 3.0, "to first step": first_step},
    )
    add_ratios(paths)
    report = {
        "settings": {"model": model},
        "model": {"params": 1000, "flops_per_token": 1e6, "flops_formula": "6N"},
        "peak": PEAK,
        "paths": paths,
        "tokenization": {"single_process": {"records_per_s": 1000.0, "tokens_per_s": 9e4}},
    }
    report["targets"] = targets(report)
    return report


def test_rates_ratios_padding_and_mfu() -> None:
    p = _report(120.0, 8.0)["paths"]
    assert p["plain"]["tokens_per_s"] == 100.0 and p["plain"]["ratio_to_plain"] == 1.0
    assert p["full_1"]["ratio_to_plain"] == pytest.approx(1.2)
    assert p["padded"]["padding_share"] > p["plain"]["padding_share"]
    assert p["plain"]["mfu_vs_float32"] == pytest.approx(100 * 1e6 / 2e11)
    assert p["plain"]["mfu_vs_bfloat16"] == pytest.approx(p["plain"]["mfu_vs_float32"] / 2)


def test_targets_met_and_missed() -> None:
    met = {t["target"]: t["met"] for t in _report(120.0, 8.0)["targets"]}
    assert all(met.values()), met
    missed = {t["target"]: t["met"] for t in _report(90.0, 30.0, model="smollm2")["targets"]}
    assert missed["full path, 1 worker >= 1.0x plain"] is False
    assert missed["full path, 1 worker ahead of HF Trainer"] is False
    assert missed["warm time to first step <= 10 s (full path, 1 worker)"] is False
    assert missed["SmolLM2 full path >= 70% of bf16 peak"] is False


def test_tables_render() -> None:
    report = _report(120.0, 8.0)
    console = Console(width=160, record=True)
    console.print(table(report))
    console.print(phase_table(report))
    text = console.export_text()
    assert "plain loop, packed" in text and "Ray start" in text
    assert any("MISSED" in line or "met" in line for line in summary_lines(report))
