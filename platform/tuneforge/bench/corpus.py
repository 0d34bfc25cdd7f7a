"""The benchmark's training records: ~2,000 instruction records built deterministically from the
instruction data bundled with tuneforge (assets/data), written once as an Alpaca JSONL file.

The bundled files hold ~1,200 records, most of them a few tokens long; a benchmark of packing needs
the length spread of real instruction data. Each record here asks one to eight bundled tasks at once
(numbered), so lengths range from a few dozen to several hundred tokens, with the same bytes for a
seed on every machine.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "data"
SOURCES = ("tiny_alpaca.jsonl", "real/self_instruct_seed.jsonl", "real/dolly_sample.jsonl")


def bundled_tasks() -> list[dict[str, str]]:
    """Every bundled Alpaca-format record (instruction, input, output), in file order."""
    tasks: list[dict[str, str]] = []
    for name in SOURCES:
        for line in (ASSETS / name).read_text(encoding="utf-8").splitlines():
            if line.strip():
                rec = json.loads(line)
                tasks.append({k: str(rec.get(k, "")) for k in ("instruction", "input", "output")})
    return tasks


def make_records(n: int, seed: int = 1234) -> list[dict[str, Any]]:
    """``n`` instruction records, each one to eight bundled tasks asked together (deterministic)."""
    rng = random.Random(seed)
    tasks = bundled_tasks()
    short = [t for t in tasks if len(t["output"]) < 80]
    records = []
    for i in range(n):
        k = rng.choice((1, 1, 2, 3, 4, 5, 6, 8))
        picked = [rng.choice(tasks if j == 0 else short) for j in range(k)]
        if k == 1:
            records.append(dict(picked[0]))
            continue
        asks = [
            f"{j + 1}. {t['instruction']}" + (f"\n   {t['input']}" if t["input"] else "")
            for j, t in enumerate(picked)
        ]
        answers = [f"{j + 1}. {t['output']}" for j, t in enumerate(picked)]
        records.append(
            {
                "instruction": f"Task set {i}: answer each numbered task.\n" + "\n".join(asks),
                "input": "",
                "output": "\n".join(answers),
            }
        )
    return records


def write_corpus(path: Path, n: int, seed: int = 1234) -> Path:
    """Write ``make_records(n, seed)`` as JSONL at ``path`` (the full path reads it as a train file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in make_records(n, seed)), encoding="utf-8"
    )
    return path
