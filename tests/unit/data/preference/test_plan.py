"""The driver's preference plan: dedup, a content-hash split that keeps a pair together, KTO unpairing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tuneforge.data.errors import DataError
from tuneforge.data.preference import read_preference_file
from tuneforge.data.preference.plan import plan_preference, write_pairs

REPO = Path(__file__).resolve().parents[4]
PAIRS = REPO / "platform/tuneforge/assets/data/tiny_pairs.jsonl"
FIXTURES = REPO / "tests/fixtures/data/preference"


@dataclass(frozen=True)
class Spec:
    path: str
    format: str = "auto"


def _plan(objective: str, files: list[Spec], **kw):
    return plan_preference(files, [], objective=objective, eval_fraction=0.2, seed=42, **kw)


def test_pairs_split_by_content_hash_without_overlap_or_loss() -> None:
    plan = _plan("dpo", [Spec(str(PAIRS))])
    n = len(read_preference_file(str(PAIRS)).records)
    assert len(plan.train) + len(plan.eval) == n and plan.eval and plan.held_out == plan.eval
    assert not {r.content_hash() for r in plan.train} & {r.content_hash() for r in plan.eval}
    again = _plan("dpo", [Spec(str(PAIRS))])
    assert [r.content_hash() for r in again.eval] == [r.content_hash() for r in plan.eval]


def test_kto_unpairs_after_the_split_and_keeps_held_out_pairs(tmp_path: Path) -> None:
    dpo, kto = _plan("dpo", [Spec(str(PAIRS))]), _plan("kto", [Spec(str(PAIRS))])
    assert len(kto.train) == 2 * len(dpo.train) and len(kto.eval) == 2 * len(dpo.eval)
    assert {r.label for r in kto.eval} == {True, False}
    assert [r.content_hash() for r in kto.held_out] == [r.content_hash() for r in dpo.eval]
    train_prompts = {r.prompt for r in kto.train}
    assert not train_prompts & {r.prompt for r in kto.eval}  # no pair straddles the split
    out = write_pairs(kto.held_out, tmp_path / "eval.jsonl")
    back = read_preference_file(str(out)).records
    assert [r.content_hash() for r in back] == [r.content_hash() for r in kto.held_out]


def test_duplicates_are_dropped_and_counted(tmp_path: Path) -> None:
    copy = tmp_path / "copy.jsonl"
    copy.write_text(PAIRS.read_text())
    plan = _plan("dpo", [Spec(str(PAIRS)), Spec(str(copy))])
    assert plan.sources[1]["duplicates"] == plan.sources[1]["records"]
    assert len(plan.train) + len(plan.eval) == plan.sources[0]["records"]


def test_unpaired_data_is_refused_for_a_paired_objective() -> None:
    kto_file = next(p for p in sorted(FIXTURES.iterdir()) if "kto" in p.name or "unpaired" in p.name)
    with pytest.raises(DataError) as info:
        _plan("dpo", [Spec(str(kto_file))])
    assert info.value.kind == "unpaired_for_pairs" and info.value.file == str(kto_file)
