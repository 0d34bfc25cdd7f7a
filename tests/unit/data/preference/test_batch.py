"""Preference batches for Ray Data's ``map_batches``: columns, counters, and KTO's KL rows.

KTO's KL rows follow TRL's rule (checked against ``KTOTrainer._prepare_dataset``'s source): row i
is row i's prompt with the previous kept reply of the batch, so every mismatched reply answers
another prompt. A batch that drops every record writes no row; the pipeline counts its drops as
records in minus rows out.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest
from transformers import PreTrainedTokenizerFast

from tuneforge.data import IGNORE_INDEX, DataError, Message
from tuneforge.data.preference import (
    PAIRED_COLUMNS,
    PREFERENCE_COUNTERS,
    UNPAIRED_COLUMNS,
    PreferenceRecord,
    PreferenceSettings,
    encode_preference,
    encode_preference_batch,
    read_preference_file,
)
from tuneforge.data.preference.batch import KL_COLUMNS, rotate_by_one
from tuneforge.testing import toy_tokenizer

FIXTURES = Path(__file__).resolve().parents[4] / "tests" / "fixtures" / "data" / "preference"
PAIR = PreferenceRecord(
    (Message("user", "What is 3 plus 3?"),),
    Message("assistant", "6"),
    Message("assistant", "hello world 7"),
)
REPLIES = [
    ("What is 1 plus 1?", "2", True),
    ("hello world 4", "hi 4", False),
    ("What is 2 plus 2?", "4", True),
]
KTO = [PreferenceRecord((Message("user", q),), Message("assistant", a), label=y) for q, a, y in REPLIES]


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerFast:
    return toy_tokenizer()


def _trained(tok: PreTrainedTokenizerFast, labels: list[int]) -> str:
    return tok.decode([t for t in labels if t != IGNORE_INDEX], skip_special_tokens=True).strip()


def test_batch_columns_and_counters(tokenizer) -> None:
    paired = [r for f in sorted(FIXTURES.glob("[!b]*.json*")) for r in read_preference_file(f).records]
    paired = [r for r in paired if r.kind == "paired"]
    settings = PreferenceSettings("chatml", 48)
    out = encode_preference_batch(paired, tokenizer, settings)
    assert set(out) == {*PAIRED_COLUMNS, *PREFERENCE_COUNTERS}
    for c in PAIRED_COLUMNS:
        assert out[c].dtype == np.int64 and out[c].shape == (len(paired), 48)
    assert out["n_records"][0] == len(paired) and out["n_records"][1:].sum() == 0
    one = encode_preference(paired[3], tokenizer, template="chatml", max_seq_len=48, truncation="truncate")
    assert one is not None and out["chosen_labels"][3].tolist() == one["chosen_labels"]
    dropped = encode_preference_batch(paired, tokenizer, PreferenceSettings("chatml", 24, "drop"))
    kept = int(dropped["n_records"][0])
    assert dropped["chosen_input_ids"].shape == (kept, 24)
    assert dropped["n_dropped"][0] == len(paired) - kept > 0
    with pytest.raises(DataError, match="cannot train a paired loss") as info:
        encode_preference_batch([*paired, KTO[0]], tokenizer, settings)
    assert info.value.kind == "unpaired_for_pairs"


def test_a_batch_that_drops_every_record_has_no_rows(tokenizer) -> None:
    out = encode_preference_batch([PAIR, PAIR], tokenizer, PreferenceSettings("chatml", 6, "drop"))
    assert all(v.shape[0] == 0 for v in out.values())  # records in (2) - rows out (0): the drops


def test_kto_batches_split_pairs_and_carry_kl_rows_of_the_previous_reply(tokenizer) -> None:
    settings = PreferenceSettings("chatml", 48, kind="unpaired")
    assert settings.columns == UNPAIRED_COLUMNS + KL_COLUMNS
    out = encode_preference_batch([PAIR, *KTO], tokenizer, settings)
    assert set(out) == {*UNPAIRED_COLUMNS, *KL_COLUMNS, *PREFERENCE_COUNTERS}
    examples = [*[(PAIR.prompt, PAIR.chosen, True), (PAIR.prompt, PAIR.rejected, False)],
                *[(r.prompt, r.chosen, r.label) for r in KTO]]  # fmt: skip
    assert out["kto_label"].tolist() == [int(y) for _, _, y in examples]
    assert out["completion_input_ids"].shape == out["kl_input_ids"].shape == (5, 48)
    for i, (prompt, _, _) in enumerate(examples):
        previous = examples[i - 1][1]  # row 0 takes the last reply
        assert previous is not None
        expected = encode_preference(
            PreferenceRecord(prompt, previous, label=True), tokenizer, template="chatml", max_seq_len=48,
            truncation="truncate",
        )  # fmt: skip
        assert expected is not None
        assert out["kl_input_ids"][i].tolist() == expected["completion_input_ids"]
        assert out["kl_labels"][i].tolist() == expected["completion_labels"]
        assert _trained(tokenizer, out["kl_labels"][i].tolist()) == previous.content
        # the KL row shares the row's prompt tokens: only the reply differs
        n_prompt = next(j for j, t in enumerate(out["completion_labels"][i]) if t != IGNORE_INDEX)
        assert (
            out["kl_input_ids"][i][:n_prompt].tolist() == out["completion_input_ids"][i][:n_prompt].tolist()
        )
    with pytest.raises(ValueError, match="unknown preference kind"):
        PreferenceSettings("chatml", 64, kind="pairs")


def test_kl_rows_skip_dropped_replies(tokenizer) -> None:
    """The rotation is over the *kept* replies: a dropped one is never a KL reply."""
    long = PreferenceRecord(
        (Message("user", "hello world 9 " * 20),), Message("assistant", "hi 9"), label=True
    )
    out = encode_preference_batch(
        [KTO[0], long, KTO[1]], tokenizer, PreferenceSettings("chatml", 32, "drop", "unpaired")
    )
    assert out["kto_label"].tolist() == [1, 0] and out["n_dropped"][0] == 1
    assert _trained(tokenizer, out["kl_labels"][0].tolist()) == KTO[1].chosen.content
    assert _trained(tokenizer, out["kl_labels"][1].tolist()) == KTO[0].chosen.content


def test_rotation_is_trls_rule() -> None:
    from trl.trainer.kto_trainer import KTOTrainer

    source = inspect.getsource(KTOTrainer._prepare_dataset)
    line = (
        'examples["KL_completion_ids"] = [examples["completion_ids"][-1]] + examples["completion_ids"][:-1]'
    )
    assert line in source
    assert rotate_by_one([1, 2, 3, 4]) == [4, 1, 2, 3]
