"""Generate the bundled demo data: tiny_chat.jsonl (OpenAI chat) and tiny_alpaca.jsonl (Alpaca).

The tasks come from small fixed tables (arithmetic, reversing and sorting words, capitals, colors,
animal sounds, opposites) so that a ~150k-parameter random-init model visibly learns them within a
few dozen steps. Output is deterministic for a seed: same bytes on every machine and Python 3.11+.

    python jobs/tools/make_tiny_data.py            # (re)write platform/tuneforge/assets/data/
    python jobs/tools/make_tiny_data.py --check    # exit 1 if the bundled files are out of date
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

SEED = 1234
N_CHAT = 600
N_ALPACA = 400
DEFAULT_OUT_DIR = Path(__file__).resolve().parents[2] / "platform" / "tuneforge" / "assets" / "data"

CAPITALS = {
    "France": "Paris", "Germany": "Berlin", "Italy": "Rome", "Spain": "Madrid", "Japan": "Tokyo",
    "China": "Beijing", "Egypt": "Cairo", "Canada": "Ottawa", "Brazil": "Brasilia", "Russia": "Moscow",
    "India": "New Delhi", "Mexico": "Mexico City", "Kenya": "Nairobi", "Peru": "Lima", "Greece": "Athens",
    "Norway": "Oslo", "Sweden": "Stockholm", "Poland": "Warsaw", "Portugal": "Lisbon", "Ireland": "Dublin",
}  # fmt: skip
COLORS = {
    "the sky on a clear day": "blue", "grass": "green", "snow": "white", "a ripe banana": "yellow",
    "coal": "black", "a ripe tomato": "red", "a carrot": "orange", "milk": "white", "a lemon": "yellow",
    "chocolate": "brown", "a strawberry": "red", "a frog": "green", "the night sky": "black",
}  # fmt: skip
SOUNDS = {
    "dog": "woof", "cat": "meow", "cow": "moo", "duck": "quack", "sheep": "baa", "pig": "oink",
    "horse": "neigh", "owl": "hoot", "lion": "roar", "frog": "ribbit", "snake": "hiss", "bee": "buzz",
    "mouse": "squeak",
}  # fmt: skip
OPPOSITES = {
    "hot": "cold", "big": "small", "up": "down", "fast": "slow", "happy": "sad", "light": "dark",
    "open": "closed", "early": "late", "full": "empty", "hard": "soft", "high": "low", "long": "short",
    "wet": "dry", "loud": "quiet", "rich": "poor", "strong": "weak", "thick": "thin", "left": "right",
    "day": "night", "push": "pull", "win": "lose", "first": "last",
}  # fmt: skip
WORDS = (
    "cat dog sun tree river apple house bird fish moon star book lamp door road cloud stone green water "
    "light table chair plant bread horse tiger mouse paper music ocean garden window pencil summer winter "
    "rabbit orange castle planet forest"
).split()
SYSTEM_PROMPTS = ("You are a helpful assistant. Answer briefly.", "You are a concise tutor.")

QA = tuple[str, str]


def ask_sum(rng: random.Random) -> QA:
    a, b = rng.randint(0, 12), rng.randint(0, 12)
    return f"What is {a} plus {b}?", f"{a} plus {b} is {a + b}."


def ask_reverse(rng: random.Random) -> QA:
    word = rng.choice(WORDS)
    return f"Spell '{word}' backwards.", word[::-1]


def ask_capital(rng: random.Random) -> QA:
    country = rng.choice(sorted(CAPITALS))
    return f"What is the capital of {country}?", f"The capital of {country} is {CAPITALS[country]}."


def ask_color(rng: random.Random) -> QA:
    thing = rng.choice(sorted(COLORS))
    return f"What color is {thing}?", f"{thing[0].upper()}{thing[1:]} is {COLORS[thing]}."


def ask_sound(rng: random.Random) -> QA:
    animal = rng.choice(sorted(SOUNDS))
    return f"What sound does a {animal} make?", f"A {animal} says {SOUNDS[animal]}."


def ask_opposite(rng: random.Random) -> QA:
    word, opposite = _opposite_pair(rng)
    return f"What is the opposite of {word}?", f"The opposite of {word} is {opposite}."


def _opposite_pair(rng: random.Random) -> QA:
    """A pair from OPPOSITES in either direction (the table lists each pair once)."""
    word = rng.choice(sorted(OPPOSITES))
    return (word, OPPOSITES[word]) if rng.random() < 0.5 else (OPPOSITES[word], word)


CHAT_TASKS: tuple[Callable[[random.Random], QA], ...] = (
    ask_sum, ask_reverse, ask_capital, ask_color, ask_sound, ask_opposite,
)  # fmt: skip


def chat_record(rng: random.Random) -> dict[str, Any]:
    """One or two question/answer turns, a quarter of them after a system message."""
    messages = []
    if rng.random() < 0.25:
        messages.append({"role": "system", "content": rng.choice(SYSTEM_PROMPTS)})
    for _ in range(2 if rng.random() < 0.2 else 1):
        question, answer = rng.choice(CHAT_TASKS)(rng)
        messages += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    return {"messages": messages}


def alpaca_record(rng: random.Random) -> dict[str, Any]:
    """An instruction with an input (or, for capitals, with the input left empty)."""
    task = rng.randrange(5)
    if task == 0:
        word = rng.choice(WORDS)
        return {"instruction": "Reverse the word.", "input": word, "output": word[::-1]}
    if task == 1:
        word, opposite = _opposite_pair(rng)
        return {"instruction": "Give the opposite of the word.", "input": word, "output": opposite}
    if task == 2:
        a, b = rng.randint(0, 30), rng.randint(0, 30)
        return {"instruction": "Add the two numbers.", "input": f"{a} and {b}", "output": str(a + b)}
    if task == 3:
        word = rng.choice(WORDS)
        letters = "".join(sorted(word))
        return {"instruction": "Sort the letters alphabetically.", "input": word, "output": letters}
    country = rng.choice(sorted(CAPITALS))
    return {"instruction": f"Name the capital of {country}.", "input": "", "output": CAPITALS[country]}


def unique_records(make: Callable[[random.Random], dict[str, Any]], n: int, rng: random.Random) -> list[dict]:
    """``n`` distinct records in generation order, so no item is over-weighted by chance repeats."""
    seen: set[str] = set()
    records = []
    while len(records) < n:
        record = make(rng)
        key = json.dumps(record, sort_keys=True)
        if key not in seen:
            seen.add(key)
            records.append(record)
    return records


#: goal template -> ordered steps (``{x}`` is filled from ``PROCEDURE_ITEMS``): the schedule mode's data
PROCEDURES = {
    "Plant a {x} in the garden.": ("Choose a sunny spot.", "Dig a hole.", "Put the {x} in the hole.",
                                   "Fill the hole with soil.", "Water the {x}."),
    "Send a {x} to a friend.": ("Write the {x}.", "Put the {x} in an envelope.", "Write the address.",
                                "Add a stamp.", "Post it."),
    "Paint the {x}.": ("Clean the {x}.", "Cover the floor.", "Paint a first coat.", "Let it dry.",
                       "Paint a second coat."),
    "Wash the {x}.": ("Fill a bucket with water.", "Add soap.", "Scrub the {x}.", "Rinse the {x}.",
                      "Dry the {x}."),
    "Pack a {x} for a trip.": ("Make a list.", "Lay out the clothes.", "Fold the clothes.",
                               "Put them in the {x}.", "Close the {x}."),
}  # fmt: skip
PROCEDURE_ITEMS = ("tree", "rose", "letter", "card", "door", "fence", "car", "window", "bag", "box", "table")
N_PROCEDURES = 150
N_PASSAGES = 120


def procedure_record(rng: random.Random) -> dict[str, Any]:
    """A (goal, steps) record; sometimes a step is dropped, so plans differ in length."""
    goal, steps = rng.choice(list(PROCEDURES.items()))
    x = rng.choice(PROCEDURE_ITEMS)
    kept = [st.format(x=x) for st in steps]
    if rng.random() < 0.4:
        kept.pop(rng.randrange(1, len(kept) - 1))
    return {"goal": goal.format(x=x), "steps": kept}


def passage_record(rng: random.Random) -> dict[str, Any]:
    """A SQuAD-style paragraph of 2-3 facts from the tables, with one question per fact."""
    facts = []
    for kind in rng.sample(("capital", "color", "sound"), k=rng.choice((2, 3))):
        if kind == "capital":
            country = rng.choice(list(CAPITALS))
            facts.append((f"The capital of {country} is {CAPITALS[country]}.",
                          f"What is the capital of {country}?", CAPITALS[country]))  # fmt: skip
        elif kind == "color":
            thing = rng.choice(list(COLORS))
            facts.append(
                (f"The color of {thing} is {COLORS[thing]}.", f"What color is {thing}?", COLORS[thing])
            )
        else:
            animal = rng.choice(list(SOUNDS))
            facts.append((f"A {animal} says {SOUNDS[animal]}.", f"What does a {animal} say?", SOUNDS[animal]))
    context = " ".join(f for f, _, _ in facts)
    qas = [{"id": f"q{i}", "question": q, "answers": [{"text": a, "answer_start": context.index(a)}]}
           for i, (_, q, a) in enumerate(facts)]  # fmt: skip
    return {"context": context, "qas": qas}


def to_squad(paragraphs: list[dict[str, Any]]) -> str:
    """SQuAD v1 nested JSON: one article holding every paragraph."""
    return (
        json.dumps({"version": "1.1", "data": [{"title": "tiny facts", "paragraphs": paragraphs}]}, indent=1)
        + "\n"
    )


def to_jsonl(records: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=True) + "\n" for r in records)


def generate(seed: int = SEED) -> dict[str, str]:
    """File name -> file text for every bundled file."""
    rng = random.Random(seed)
    return {
        "tiny_chat.jsonl": to_jsonl(unique_records(chat_record, N_CHAT, rng)),
        "tiny_alpaca.jsonl": to_jsonl(unique_records(alpaca_record, N_ALPACA, rng)),
        "tiny_procedures.jsonl": to_jsonl(unique_records(procedure_record, N_PROCEDURES, rng)),
        "tiny_passages.json": to_squad(unique_records(passage_record, N_PASSAGES, rng)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--check", action="store_true", help="compare with the files instead of writing them")
    args = parser.parse_args(argv)
    stale = []
    for name, text in generate(args.seed).items():
        path = args.out_dir / name
        if args.check:
            if not path.is_file() or path.read_text(encoding="ascii") != text:
                stale.append(str(path))
        else:
            path.write_text(text, encoding="ascii", newline="\n")
            print(f"wrote {path} ({text.count(chr(10))} records)")
    if stale:
        print("out of date (rerun jobs/tools/make_tiny_data.py): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
