"""Build the bundled real instruction data (human-written, permissively licensed) for the real model.

Two public sources, copied verbatim field by field into Alpaca JSONL (``instruction``/``input``/
``output``) -- nothing is generated or paraphrased:

* ``self-instruct/seed_tasks.jsonl`` (yizhongw/self-instruct, Apache-2.0): 175 human-written tasks;
  each task's first instance gives ``input``/``output``.
* ``dolly/dolly.json`` (first records of databricks-dolly-15k, CC BY-SA 3.0): ``context`` -> ``input``,
  ``response`` -> ``output``. Kept in its own file because of its share-alike license.

Records whose answer is longer than ``MAX_OUTPUT_CHARS`` are left out so that short CPU runs
(256-token sequences) train on whole answers.

    python jobs/tools/make_real_data.py --shared ../shared/data          # (re)write the files
    python jobs/tools/make_real_data.py --shared ../shared/data --check  # exit 1 if out of date
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

OUT_DIR = Path(__file__).resolve().parents[2] / "platform" / "tuneforge" / "assets" / "data" / "real"
MAX_OUTPUT_CHARS = 600


def _line(instruction: str, input_: str, output: str) -> str:
    return json.dumps({"instruction": instruction, "input": input_, "output": output}, ensure_ascii=False)


def self_instruct(shared: Path) -> list[str]:
    rows = []
    for raw in (shared / "self-instruct" / "seed_tasks.jsonl").read_text().splitlines():
        task = json.loads(raw)
        inst = task["instances"][0]
        if inst["output"].strip() and len(inst["output"]) <= MAX_OUTPUT_CHARS:
            rows.append(_line(task["instruction"], inst["input"], inst["output"]))
    return rows


def dolly(shared: Path) -> list[str]:
    rows = []
    for rec in json.loads((shared / "dolly" / "dolly.json").read_text()):
        if rec["response"].strip() and len(rec["response"]) <= MAX_OUTPUT_CHARS:
            rows.append(_line(rec["instruction"], rec["context"], rec["response"]))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, required=True, help="the shared data folder")
    parser.add_argument("--check", action="store_true", help="compare with the files instead of writing them")
    args = parser.parse_args()
    files = {
        "self_instruct_seed.jsonl": self_instruct(args.shared),
        "dolly_sample.jsonl": dolly(args.shared),
    }
    stale = []
    for name, rows in files.items():
        text = "\n".join(rows) + "\n"
        path = OUT_DIR / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            OUT_DIR.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"{path}: {len(rows)} records")
    if stale:
        print(f"out of date: {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
