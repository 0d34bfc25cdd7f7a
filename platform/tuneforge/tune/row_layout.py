"""A sweep's trials share one tokenized dataset: refuse spaces whose trials would need different rows.

SFT rows, preference pairs and KTO's labelled replies are different columns, and a precomputed
reference adds log-prob columns that an adapter-off reference does not have. The sweep tokenizes once
for all trials (``tune/driver.py``), so every trial a space can sample must read the same layout: a
space may search ``objective`` among the paired objectives with an adapter method (dpo, ipo, orpo,
simpo: same pairs, reference from the adapter), or ``beta`` and the other knobs of one objective.
"""

from __future__ import annotations

from itertools import product
from typing import Any

from tuneforge.config import JobConfig
from tuneforge.config.objective import ADAPTER_METHODS, NEEDS_REFERENCE
from tuneforge.tune.space_types import Domain, SearchSpace


def _values(value: Any) -> list[Any]:
    return value.candidates() if isinstance(value, Domain) else [value]


def row_layout(name: str, objective: str, reference: str) -> tuple[str, str]:
    """(rows, reference columns) a trial of this method + objective trains on."""
    rows = "sft" if objective == "sft" else "kto" if objective == "kto" else "pairs"
    if objective not in NEEDS_REFERENCE:
        return rows, "none"
    if reference == "auto":
        reference = "adapter_disabled" if name in ADAPTER_METHODS else "precomputed"
    return rows, "precomputed" if reference == "precomputed" else "none"


def check_row_layouts(job: JobConfig, space: SearchSpace) -> None:
    """Raise when two trials of ``space`` would need differently tokenized rows."""
    base = job.method
    top_objectives = _values(space.params.get("method.objective", base.objective))
    top_references = _values(space.params.get("method.reference", base.reference))
    branches = space.branches or ()
    combos: set[tuple[str, str]] = set()
    seen: dict[tuple[str, str], str] = {}
    for branch in branches or [None]:
        name = branch.name if branch is not None else base.name
        knobs = branch.knobs if branch is not None else {}
        objectives = _values(knobs["objective"]) if "objective" in knobs else top_objectives
        references = _values(knobs["reference"]) if "reference" in knobs else top_references
        for objective, reference in product(objectives, references):
            layout = row_layout(name, str(objective), str(reference))
            combos.add(layout)
            seen.setdefault(layout, f"{name} + {objective}")
    if len(combos) > 1:
        examples = "; ".join(f"{who} -> {rows} rows, {ref} reference" for (rows, ref), who in seen.items())
        raise ValueError(
            "search.space: the trials would need differently tokenized data (" + examples + "); a sweep "
            "tokenizes once, so search objectives that read the same rows (docs/preference.md), or run "
            "one sweep per objective"
        )
