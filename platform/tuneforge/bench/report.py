"""The benchmark's report: one JSON-ready dict (rates, ratios, padding, memory, phases, MFU, targets)
and the rich table the command prints."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from tuneforge.bench.measure import median_rate, mfu, padding_share

LABELS = {
    "plain": "plain loop, packed",
    "padded": "plain loop, padded",
    "hf": "HF Trainer, packed",
    "full_1": "full path, 1 worker, ZeRO-0",
    "full_n": "full path, {n} workers, ZeRO-2",
}
FLOPS_FORMULA = "6*N + 12*L*h*s FLOPs per trained token (N: matmul parameters, s: row length)"


def path_entry(
    rates: list[float],
    real: float,
    positions: float,
    peak_rss: float | None,
    flops_per_tok: float,
    peak: dict[str, Any],
) -> dict[str, Any]:
    """One path's row: median of its window rates, padding share, memory and MFU against each peak."""
    rate = median_rate(rates)
    entry: dict[str, Any] = {
        "tokens_per_s": rate,
        "window_tokens_per_s": rates,
        "padding_share": padding_share(real, positions),
        "peak_rss_bytes": peak_rss,
        "model_flops_per_s": rate * flops_per_tok,
    }
    for key in ("peak_float32", "peak_bfloat16", "device_peak_bf16"):
        if peak.get(key):
            entry[f"mfu_vs_{key.removeprefix('peak_')}"] = mfu(rate, flops_per_tok, float(peak[key]))
    return entry


def add_ratios(paths: dict[str, dict[str, Any]]) -> None:
    """Every path's rate over the plain packed loop's (the reference)."""
    ref = paths.get("plain", {}).get("tokens_per_s")
    for entry in paths.values():
        entry["ratio_to_plain"] = entry["tokens_per_s"] / ref if ref else None


def targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, each with the measured value and whether it is met (None: not measured)."""
    p = report["paths"]

    def get(name: str, key: str) -> Any:
        return p.get(name, {}).get(key)

    full, hf = get("full_1", "ratio_to_plain"), get("hf", "ratio_to_plain")
    first = get("full_1", "seconds_to_first_step")
    pads = [
        get(n, "padding_share")
        for n in ("plain", "hf", "full_1", "full_n")
        if get(n, "padding_share") is not None
    ]
    vs_hf = None if full is None or hf is None else full / hf
    rows = [
        {
            "target": "full path, 1 worker >= 1.0x plain",
            "value": full,
            "met": None if full is None else full >= 1.0,
        },
        {
            "target": "full path, 1 worker ahead of HF Trainer",
            "value": vs_hf,
            "met": None if vs_hf is None else vs_hf > 1,
        },
        {
            "target": "padding share <= 1% (packed paths)",
            "value": max(pads) if pads else None,
            "met": None if not pads else max(pads) <= 0.01,
        },
        {
            "target": "warm time to first step <= 10 s (full path, 1 worker)",
            "value": first,
            "met": None if first is None else first <= 10.0,
        },
    ]
    if report["settings"]["model"] == "smollm2":
        util = get("full_1", "mfu_vs_bfloat16")
        rows.append(
            {
                "target": "SmolLM2 full path >= 70% of bf16 peak",
                "value": util,
                "met": None if util is None else util >= 0.70,
            }
        )
    return rows


def _num(value: Any, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def table(report: dict[str, Any]) -> Table:
    """The paths side by side: tokens/s, ratio, padding, memory, MFU, time to first step and to the end."""
    t = Table(
        title=f"tuneforge bench: {report['settings']['model']} ({report['model']['params']:,} parameters)"
    )
    for col in (
        "path",
        "tokens/s",
        "x plain",
        "pad",
        "RSS/worker",
        "MFU fp32",
        "MFU bf16",
        "1st step s",
        "end s",
    ):
        t.add_column(col, justify="left" if col == "path" else "right")
    for name, e in report["paths"].items():
        label = LABELS[name].format(n=e.get("workers", ""))
        rss = e.get("peak_rss_bytes")
        t.add_row(
            label,
            _num(e["tokens_per_s"], ",.0f"),
            _num(e.get("ratio_to_plain"), ".2f"),
            _num(e["padding_share"], ".1%"),
            "-" if rss is None else f"{rss / 2**20:,.0f} MiB",
            _num(e.get("mfu_vs_float32"), ".0%"),
            _num(e.get("mfu_vs_bfloat16"), ".0%"),
            _num(e.get("seconds_to_first_step"), ".1f"),
            _num(e.get("seconds_to_end"), ".1f"),
        )
    return t


def phase_table(report: dict[str, Any]) -> Table:
    """Where the full path's time to its first step goes, phase by phase, for each worker count."""
    full = {n: e for n, e in report["paths"].items() if "phase_seconds" in e}
    t = Table(title="full path: seconds from command start")
    t.add_column("phase")
    for name, e in full.items():
        t.add_column(LABELS[name].format(n=e.get("workers", "")).removeprefix("full path, "), justify="right")
    phases = next(iter(full.values()))["phase_seconds"] if full else {}
    for phase in phases:
        t.add_row(phase, *(_num(e["phase_seconds"].get(phase), ".1f") for e in full.values()))
    return t


def summary_lines(report: dict[str, Any]) -> list[str]:
    """Peak, tokenization and targets as plain lines under the tables."""
    peak, tok = report["peak"], report.get("tokenization") or {}
    lines = [
        f"machine peak ({peak['device']}, {peak['threads']} threads): "
        f"fp32 {peak['peak_float32'] / 1e9:,.0f} GFLOP/s, "
        f"bf16 {peak['peak_bfloat16'] / 1e9:,.0f} GFLOP/s; model FLOPs: {report['model']['flops_formula']} "
        f"= {report['model']['flops_per_token']:,.0f}",
    ]
    for key, label in (
        ("single_process", "fast tokenizer, 1 process"),
        ("ray_data", "Ray Data map_batches"),
        ("pipeline", "cold tokenize+pack pipeline"),
    ):
        if key in tok and tok[key].get("records_per_s"):
            r = tok[key]
            lines.append(
                f"tokenization, {label}: {r['records_per_s']:,.0f} records/s, "
                f"{r.get('tokens_per_s', 0):,.0f} tokens/s"
            )
    for row in report["targets"]:
        mark = {True: "met", False: "MISSED", None: "not measured"}[row["met"]]
        lines.append(f"target: {row['target']}: {_num(row['value'], '.3g')} ({mark})")
    return lines
