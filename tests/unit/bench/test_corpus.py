"""The benchmark corpus: deterministic, the requested size, and a real spread of lengths."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from tuneforge.bench.corpus import bundled_tasks, make_records, write_corpus


def test_records_are_deterministic_and_varied(tmp_path: Path) -> None:
    a, b = make_records(300, seed=1), make_records(300, seed=1)
    assert a == b and len(a) == 300 and make_records(300, seed=2) != a
    lengths = [len(r["instruction"]) + len(r["output"]) for r in a]
    assert max(lengths) > 4 * min(lengths) and statistics.median(lengths) > min(lengths)
    assert len(bundled_tasks()) > 500
    path = write_corpus(tmp_path / "x" / "c.jsonl", 50)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == 50 and set(rows[0]) == {"instruction", "input", "output"}
