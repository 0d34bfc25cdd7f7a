"""Generate the bundled preference demo data: tiny_pairs.jsonl (OpenAI preference JSONL).

Each pair is a question from the bundled chat data (its first user turn), the right answer as the
preferred output and the same answer with its words in reverse order as the non-preferred one: the
grammatical-vs-corrupted signal a tiny random-init model can learn within a few dozen DPO steps.
Deterministic: same bytes on every machine.

    python jobs/tools/make_tiny_pairs.py            # (re)write platform/tuneforge/assets/data/
    python jobs/tools/make_tiny_pairs.py --check    # exit 1 if the bundled file is out of date
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "platform" / "tuneforge" / "assets" / "data"
SOURCE, OUT = DATA / "tiny_chat.jsonl", DATA / "tiny_pairs.jsonl"


def corrupt(text: str) -> str | None:
    """The answer's words in reverse order (None when that changes nothing, e.g. one word)."""
    words = text.split()
    flipped = " ".join(reversed(words))
    return flipped if flipped != text else None


def build() -> str:
    lines, seen = [], set()
    for raw in SOURCE.read_text().splitlines():
        messages = json.loads(raw)["messages"]
        question, answer = messages[0]["content"], messages[1]["content"]
        bad = corrupt(answer)
        if bad is None or question in seen:
            continue
        seen.add(question)
        record = {
            "input": {"messages": [{"role": "user", "content": question}]},
            "preferred_output": [{"role": "assistant", "content": answer}],
            "non_preferred_output": [{"role": "assistant", "content": bad}],
        }
        lines.append(json.dumps(record, ensure_ascii=False))
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the bundled file is out of date")
    args = parser.parse_args()
    text = build()
    if args.check:
        ok = OUT.exists() and OUT.read_text() == text
        print("up to date" if ok else f"{OUT} is out of date: run {Path(__file__).name}")
        return 0 if ok else 1
    OUT.write_text(text)
    print(f"wrote {OUT} ({text.count(chr(10))} pairs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
