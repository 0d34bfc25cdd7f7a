"""Batches from tuneforge's own data blocks: packed rows waste almost nothing, naive padding a lot,
and both hold exactly the same trained tokens."""

from __future__ import annotations

import pytest

from tuneforge.bench.batches import packed_batches, padded_batches, train_conversations
from tuneforge.bench.corpus import write_corpus
from tuneforge.bench.settings import BenchSettings, bench_job
from tuneforge.data.plan import plan_data
from tuneforge.data.tokenize_blocks import EncodeSettings
from tuneforge.testing import toy_tokenizer


@pytest.fixture(scope="module")
def convs(tmp_path_factory: pytest.TempPathFactory) -> list:
    work = tmp_path_factory.mktemp("bench")
    job = bench_job(BenchSettings(records=120), work, write_corpus(work / "c.jsonl", 120), workers=1)
    d = job.data
    plan = plan_data(
        d.train_files,
        d.eval_files,
        eval_fraction=d.eval_fraction,
        seed=job.trainer.seed,
        dedup=d.dedup,
        on_bad=d.on_bad_record,
        near_dedup=d.near_dedup,
    )
    return train_conversations(job, plan)


SETTINGS = EncodeSettings("chatml", 256, True)


def test_the_train_split_is_read(convs: list) -> None:
    assert 100 <= len(convs) <= 120  # 5% held out by content hash


def test_naive_padding_wastes_more_than_packing(convs: list) -> None:
    tok = toy_tokenizer()
    packed, padded = packed_batches(convs, tok, SETTINGS, 4), padded_batches(convs, tok, SETTINGS, 4)
    waste = [1 - sum(b.real_tokens) / sum(b.positions) for b in (packed, padded)]
    assert waste[1] > waste[0]
    assert all(b["input_ids"].shape == (4, 256) for b in packed.batches)
    assert all(b["attention_mask"].shape[1] <= 256 for b in padded.batches)
    assert "attention_mask" not in packed.batches[0] and "position_ids" in packed.batches[0]


def test_packed_and_padded_hold_the_same_tokens(convs: list) -> None:
    tok = toy_tokenizer()
    packed, padded = packed_batches(convs, tok, SETTINGS, 1), padded_batches(convs, tok, SETTINGS, 1)
    assert sum(packed.real_tokens) == sum(padded.real_tokens) > 0
    assert packed.step_tokens(len(packed.batches) + 1)[-1] == packed.real_tokens[0]  # batches cycle
