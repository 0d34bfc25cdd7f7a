"""Mixing (deterministic, weights respected), exact-duplicate removal, per-source statistics, and the
pure per-file/per-batch functions the Ray Data pipeline runs (called here without Ray)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from tuneforge.data import Conversation, DataError, read_source
from tuneforge.data.mixing import mix_factors, repeat_count
from tuneforge.data.plan import plan_data
from tuneforge.data.record_rows import ROW_COLUMNS, SplitRules, file_items, file_rows, row_conversations
from tuneforge.data.tokenize_blocks import EncodeSettings, tokenize_and_block
from tuneforge.models.tokenizer import train_bpe_tokenizer


@dataclass
class Spec:
    path: str
    format: str = "auto"
    weight: float | None = None
    name: str | None = None


def _chat(i: int) -> dict:
    return {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}


def _file(tmp_path: Path, name: str, records: list[dict]) -> str:
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def test_mix_factors() -> None:
    assert mix_factors([100, 300], [None, None]) == [1.0, 1.0]  # no weights: natural proportions
    assert mix_factors([100, 300], [1, 1]) == pytest.approx([2.0, 2 / 3])
    assert mix_factors([100, 300], [1, 3]) == pytest.approx([1.0, 1.0])
    assert mix_factors([100], [5]) == [1.0]
    with pytest.raises(ValueError):
        mix_factors([1, 2], [1, None])


def test_repeat_count_is_deterministic_and_matches_the_factor() -> None:
    hashes = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(4000)]
    counts = [repeat_count(h, 0, 2.3, seed=1) for h in hashes]
    assert counts == [repeat_count(h, 0, 2.3, seed=1) for h in hashes]
    assert set(counts) == {2, 3} and abs(sum(counts) / len(hashes) - 2.3) < 0.03
    assert counts != [repeat_count(h, 0, 2.3, seed=2) for h in hashes]
    assert all(repeat_count(h, 0, 1.0, seed=1) == 1 for h in hashes[:10])


def test_plan_weights_are_shares_of_the_train_mix(tmp_path: Path) -> None:
    a = _file(tmp_path, "a.jsonl", [_chat(i) for i in range(600)])
    b = _file(tmp_path, "b.jsonl", [_chat(1000 + i) for i in range(200)])
    plan = plan_data([Spec(a, weight=1), Spec(b, weight=3)], [], eval_fraction=0.1, seed=7)
    sa, sb = plan.sources
    assert sa.train_records + sa.eval_records == 600 and abs(sa.eval_records - 60) < 25
    assert sb.share == pytest.approx(0.75, abs=0.03) and sa.share == pytest.approx(0.25, abs=0.03)
    total = sa.mixed_records + sb.mixed_records
    assert abs(total - (sa.train_records + sb.train_records)) < 0.03 * total
    again = plan_data([Spec(a, weight=1), Spec(b, weight=3)], [], eval_fraction=0.1, seed=7)
    assert [s.to_dict() for s in again.sources] == [s.to_dict() for s in plan.sources]
    natural = plan_data([Spec(a), Spec(b)], [], eval_fraction=0.1, seed=7)
    assert [s.factor for s in natural.sources] == [1.0, 1.0]
    assert natural.sources[0].mixed_records == natural.sources[0].train_records


def test_dedup_keeps_the_first_copy_and_prefers_eval_files(tmp_path: Path) -> None:
    a = _file(tmp_path, "a.jsonl", [_chat(0), _chat(1), _chat(0), _chat(2)])
    b = _file(tmp_path, "b.jsonl", [_chat(1), _chat(3)])
    ev = _file(tmp_path, "e.jsonl", [_chat(2)])
    plan = plan_data([Spec(a), Spec(b)], [Spec(ev)], eval_fraction=0.0, seed=0)
    assert plan.drop == {("train", 0, 2), ("train", 0, 3), ("train", 1, 0)}
    assert [c.messages[0].content for c in plan.conversations("train", 0)] == ["q0", "q1"]
    assert [s.duplicates for s in plan.sources] == [2, 1, 0]
    assert plan.summary()["sources"][0]["sha256"] == hashlib.sha256(Path(a).read_bytes()).hexdigest()
    kept = plan_data([Spec(a)], [], eval_fraction=0.0, seed=0, dedup=False)
    assert kept.drop == set() and kept.sources[0].train_records == 4


def test_skip_policy_reaches_the_plan_and_all_bad_is_an_error(tmp_path: Path) -> None:
    a = _file(tmp_path, "a.jsonl", [_chat(0), {"messages": [{"role": "bot", "content": "x"}]}])
    plan = plan_data([Spec(a)], [], eval_fraction=0.0, seed=0, on_bad="skip")
    assert plan.sources[0].skipped == 1 and plan.problems.to_dict()["by_kind"]["schema"]["count"] == 1
    bad = _file(tmp_path, "bad.jsonl", [{"messages": [{"role": "bot", "content": "x"}]}])
    with pytest.raises(DataError, match="no usable records: all 1 were skipped"):
        plan_data([Spec(bad)], [], eval_fraction=0.0, seed=0, on_bad="skip")


# ------------------------------------------- the pure functions the Ray Data tasks run, called without Ray


def _rows(
    plan, split: str, target: str, seed: int = 7, eval_fraction: float = 0.1, on_bad: str = "error"
) -> list[Conversation]:
    out = []
    rules = SplitRules.of(
        plan, target, eval_fraction=eval_fraction, seed=seed, has_eval_files=False, on_bad=on_bad
    )
    for item in file_items(plan, split):
        rows = file_rows(item, rules)
        out += row_conversations({c: [r[c] for r in rows] for c in ROW_COLUMNS})
    return out


def test_source_rows_reproduce_the_plan(tmp_path: Path) -> None:
    a = _file(tmp_path, "a.jsonl", [_chat(i) for i in range(300)] + [_chat(5)])
    b = _file(tmp_path, "b.jsonl", [_chat(1000 + i) for i in range(100)])
    plan = plan_data([Spec(a, weight=1), Spec(b, weight=1)], [], eval_fraction=0.1, seed=7)
    train, evald = _rows(plan, "train", "train"), _rows(plan, "train", "eval")
    assert len(train) == sum(s.mixed_records for s in plan.sources)
    from_b = sum(
        1 for c in train if c.messages[0].content.startswith("q1") and len(c.messages[0].content) == 5
    )
    assert from_b == plan.sources[1].mixed_records
    assert len(evald) == sum(s.eval_records for s in plan.sources)
    assert not {c.content_hash() for c in train} & {c.content_hash() for c in evald}
    assert len([c for c in train + evald if c.messages[0].content == "q5"]) >= 1
    assert train == _rows(plan, "train", "train")  # deterministic


def test_tokenize_and_block_counts_truncation(tmp_path: Path) -> None:
    long = {
        "messages": [{"role": "user", "content": "long " * 10}, {"role": "assistant", "content": "ok " * 80}]
    }
    convs = read_source(_file(tmp_path, "a.jsonl", [_chat(1), long])).conversations
    tok = train_bpe_tokenizer(["q1 a1 long ok"] * 10, 300)

    def settings(truncation: str) -> EncodeSettings:
        return EncodeSettings("auto", 64, packing=True, truncation=truncation)

    out = tokenize_and_block(convs, None, tokenizer=tok, settings=settings("truncate"))
    assert out["input_ids"].shape[1] == 64
    assert (out["n_docs"].sum(), out["n_truncated"].sum(), out["n_dropped"].sum()) == (2, 1, 0)
    assert out["input_ids"].shape[0] == 2  # the truncated record fills a block; the short one opens another
    out = tokenize_and_block(convs, None, tokenizer=tok, settings=settings("drop"))
    assert (out["n_docs"].sum(), out["n_too_long"].sum(), out["n_dropped"].sum()) == (1, 1, 1)


def test_ray_tasks_reparse_exactly_like_the_driver(tmp_path: Path) -> None:
    """Drop keys are ordinals of good records, so a task must keep exactly the driver's records, even
    with skipped records, a forced format and catalog column mappings."""
    both = {"instruction": "i", "output": "o", "messages": [{"role": "assistant", "content": "m"}]}
    ab, cd = {"instruction": "a", "output": "b"}, {"instruction": "c", "output": "d"}
    mixed = _file(tmp_path, "m.jsonl", [ab, both, ab, cd])
    _file(tmp_path, "qa.jsonl", [{"q": "x", "a": "y"}, {"q": "x", "a": "y"}, {"q": "z", "a": "w"}])
    catalog = {"qa": {"file_name": "qa.jsonl", "columns": {"prompt": "q", "response": "a"}}}
    (tmp_path / "dataset_info.json").write_text(json.dumps(catalog))
    specs = [Spec(mixed), Spec(mixed, format="alpaca"), Spec(str(tmp_path / "dataset_info.json"), name="qa")]
    plan = plan_data(specs, [], eval_fraction=0.0, seed=0, on_bad="skip")
    assert [s.duplicates for s in plan.sources] == [1, 3, 1]  # the forced-alpaca file keeps the mixed record
    expected = [c.messages for sp in plan.sources for c in plan.conversations("train", sp.index)]
    rows = _rows(plan, "train", "train", seed=0, eval_fraction=0.0, on_bad="skip")
    assert [c.messages for c in rows] == expected


def test_plan_keeps_digests_not_the_corpus(tmp_path: Path) -> None:
    """The driver streams files: the plan it keeps is tiny next to the data it read."""
    import pickle

    body = "lorem ipsum dolor " * 60  # ~1 KB per record
    recs = [{"messages": [{"role": "user", "content": f"{i} {body}"}, {"role": "assistant", "content": body}]}
            for i in range(3000)]  # fmt: skip
    path = _file(tmp_path, "big.jsonl", recs + recs[:10])
    plan = plan_data([Spec(path)], [], eval_fraction=0.1, seed=0)
    assert plan.sources[0].duplicates == 10
    assert len(pickle.dumps(plan)) < Path(path).stat().st_size / 100
    assert len(plan.conversations("train", 0)) == 3000  # re-streamed from the file on demand


def test_near_dedup_drops_near_copies_only_when_asked(tmp_path: Path) -> None:
    words = [f"w{i}" for i in range(60)]
    para = " ".join(words)
    near = " ".join(words[:30] + ["changed"] + words[31:])  # one word differs: 5-gram Jaccard ~0.85
    other = " ".join(reversed(words))
    recs = [{"messages": [{"role": "user", "content": "fix"}, {"role": "assistant", "content": t}]}
            for t in (para, near, other)]  # fmt: skip
    path = _file(tmp_path, "n.jsonl", recs)
    exact = plan_data([Spec(path)], [], eval_fraction=0.0, seed=0)
    assert (exact.sources[0].duplicates, exact.sources[0].near_duplicates) == (0, 0)
    fuzzy = plan_data([Spec(path)], [], eval_fraction=0.0, seed=0, near_dedup=0.7)
    assert fuzzy.sources[0].near_duplicates == 1 and fuzzy.drop == {("train", 0, 1)}
    kept = [c.messages[1].content for c in fuzzy.conversations("train", 0)]
    assert kept == [para, other]  # the first copy wins; the unrelated record stays
