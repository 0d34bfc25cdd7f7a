"""Quality against cost over a sweep's trials: the Pareto front, as a table and as a plot.

A strategy search rarely has one winner: LoRA at rank 4 may lose a little eval loss to full fine-tuning
for a hundredth of the trainable parameters. The front is the set of trials that no other trial beats on
both axes at once; everything else is dominated and can be discarded whatever the budget.

Records are plain dicts, one per trial: ``trial_id``, the metric (key ``metric`` unless told otherwise),
and cost fields (``COST_FIELDS``), plus anything else (``method`` labels the plot). Records without a
finite metric or cost (failed trials, trials stopped before reporting) are left out of the front.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

COST_FIELDS: tuple[str, ...] = (
    "trainable_params",
    "adapter_bytes",
    "train_tokens",
    "wall_s",
    "peak_mem_bytes",
)
Direction = Literal["min", "max"]
Record = Mapping[str, Any]


def _value(record: Record, key: str) -> float | None:
    value = record.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _point(record: Record, key: str) -> float:
    """``_value`` of a plotted record: those are usable (``_usable`` or a ``pareto_front`` of them)."""
    value = _value(record, key)
    assert value is not None, f"plotted record without a finite {key}"
    return value


def _usable(records: Iterable[Record], metric: str, cost: str) -> list[Record]:
    return [r for r in records if _value(r, metric) is not None and _value(r, cost) is not None]


def _check_direction(direction: str) -> None:
    if direction not in ("min", "max"):
        raise ValueError(f"direction must be 'min' or 'max' (got {direction!r})")


def dominates(
    a: Record,
    b: Record,
    *,
    metric: str = "metric",
    cost: str = "trainable_params",
    direction: Direction = "min",
) -> bool:
    """True if ``a`` is at least as good as ``b`` on quality and cost, and strictly better on one."""
    qa, qb = _value(a, metric), _value(b, metric)
    ca, cb = _value(a, cost), _value(b, cost)
    if qa is None or qb is None or ca is None or cb is None:
        return False
    if direction == "max":
        qa, qb = -qa, -qb
    return qa <= qb and ca <= cb and (qa < qb or ca < cb)


def pareto_front(
    records: Iterable[Record],
    *,
    metric: str = "metric",
    cost: str = "trainable_params",
    direction: Direction = "min",
) -> list[Record]:
    """The non-dominated records (lower cost, better metric per ``direction``), sorted by cost then quality.

    Ties are kept: two trials with the same metric and cost dominate neither each other, so both are on
    the front (dropping one would be an arbitrary choice). O(n^2), which is nothing at sweep sizes.
    """
    _check_direction(direction)
    points = _usable(records, metric, cost)
    front = [
        b
        for b in points
        if not any(dominates(a, b, metric=metric, cost=cost, direction=direction) for a in points)
    ]
    sign = -1.0 if direction == "max" else 1.0
    return sorted(front, key=lambda r: (_value(r, cost), sign * (_value(r, metric) or 0.0)))


def _human(value: Any, key: str) -> str:
    """Compact numbers for the table: 1.2M params, 3.4 MiB, 12.3 s."""
    number = _value({"v": value}, "v")
    if number is None:
        return "-" if value is None else str(value)
    if key.endswith("_bytes"):
        for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
            if abs(number) < 1024 or unit == "TiB":
                return f"{number:.0f} {unit}" if unit == "B" else f"{number:.1f} {unit}"
            number /= 1024
    if key.endswith("_s"):
        return f"{number:.1f} s"
    if key in ("trainable_params", "train_tokens"):
        for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
            if abs(number) >= size:
                return f"{number / size:.2f}{unit}"
        return f"{number:.0f}"
    return f"{number:.4g}"


def render_pareto_table(
    records: Sequence[Record],
    *,
    metric: str = "metric",
    cost: str = "trainable_params",
    direction: Direction = "min",
    front: Sequence[Record] | None = None,
    title: str | None = None,
    width: int = 120,
) -> str:
    """Every trial as a rich table (front first, marked ``*``, then by cost), rendered to plain text."""
    from rich.console import Console
    from rich.table import Table

    front = pareto_front(records, metric=metric, cost=cost, direction=direction) if front is None else front
    on_front = {id(r) for r in front}
    costs = [c for c in COST_FIELDS if any(c in r for r in records)]
    if cost not in costs:
        costs.insert(0, cost)
    better = "lower" if direction == "min" else "higher"
    table = Table(title=title or f"Pareto front: {metric} ({better} is better) vs {cost}")
    table.add_column("front", justify="center")
    table.add_column("trial")
    if any("method" in r for r in records):
        table.add_column("method")
    table.add_column(metric, justify="right")
    for name in costs:
        table.add_column(name + (" *" if name == cost else ""), justify="right")
    rest = sorted(
        (r for r in records if id(r) not in on_front),
        key=lambda r: (_value(r, cost) is None, _value(r, cost) or 0.0),
    )
    for record in [*front, *rest]:
        mark = "*" if id(record) in on_front else ""
        row = [mark, str(record.get("trial_id", "?"))]
        if any("method" in r for r in records):
            row.append(str(record.get("method", "")))
        quality = _value(record, metric)
        row.append("-" if quality is None else f"{quality:.4f}")
        row.extend(_human(record.get(name), name) for name in costs)
        table.add_row(*row, style="bold" if mark else None)
    buffer = io.StringIO()
    Console(file=buffer, width=width, color_system=None, force_terminal=False).print(table)
    return buffer.getvalue()


def save_pareto_plot(
    records: Sequence[Record],
    path: str | Path,
    *,
    metric: str = "metric",
    cost: str = "trainable_params",
    direction: Direction = "min",
    front: Sequence[Record] | None = None,
    title: str | None = None,
) -> Path:
    """Write a PNG of metric vs cost: all trials (coloured by ``method`` when present), front highlighted.

    Uses a bare ``Figure`` on the Agg canvas instead of pyplot, so it needs no display, touches no global
    backend state and is safe to call from any thread of a driver.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    _check_direction(direction)
    usable = _usable(records, metric, cost)
    front = pareto_front(usable, metric=metric, cost=cost, direction=direction) if front is None else front
    fig = Figure(figsize=(7.5, 4.8), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    groups: dict[str, list[Record]] = {}
    for record in usable:
        groups.setdefault(str(record.get("method", "trials")), []).append(record)
    for label, group in sorted(groups.items()):
        ax.scatter(
            [_point(r, cost) for r in group], [_point(r, metric) for r in group], label=label, alpha=0.6, s=30
        )
    if front:
        xs = [_point(r, cost) for r in front]
        ys = [_point(r, metric) for r in front]
        ax.step(xs, ys, where="post", color="black", linewidth=1.2, label="Pareto front")
        ax.scatter(xs, ys, facecolors="none", edgecolors="black", s=90, linewidths=1.5)
        for record, x, y in zip(front, xs, ys, strict=True):
            ax.annotate(
                str(record.get("trial_id", "")), (x, y), textcoords="offset points", xytext=(5, 5), fontsize=7
            )
    positive = [_value(r, cost) or 0.0 for r in usable]
    if positive and min(positive) > 0 and max(positive) / min(positive) > 100:
        ax.set_xscale("log")
    ax.set_xlabel(cost.replace("_", " "))
    ax.set_ylabel(f"{metric} ({'lower' if direction == 'min' else 'higher'} is better)")
    ax.set_title(title or f"{metric} vs {cost}")
    ax.grid(True, alpha=0.3)
    if usable:
        ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out


__all__ = ["COST_FIELDS", "dominates", "pareto_front", "render_pareto_table", "save_pareto_plot"]
