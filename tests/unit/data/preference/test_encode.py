"""Preference encoding: labels only on reply tokens, identical prompt tokens on both sides, padding and
attention masks, truncation both ways, named and tokenizer (Jinja) templates (the batch columns:
test_batch.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from transformers import PreTrainedTokenizerFast

from tuneforge.data import IGNORE_INDEX, Message, render_text
from tuneforge.data.preference import (
    PAIRED_COLUMNS,
    UNPAIRED_COLUMNS,
    PreferenceRecord,
    PreferenceSettings,
    encode_preference,
    encode_preference_batch,
    encode_preference_result,
    preference_pieces,
    preference_stats,
    read_preference_file,
)
from tuneforge.models.tokenizer import train_bpe_tokenizer

REPO = Path(__file__).resolve().parents[4]
FIXTURES = REPO / "tests" / "fixtures" / "data" / "preference"
SHARED = REPO.parent / "shared" / "data"
CHATML_JINJA = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
PAIR = PreferenceRecord(
    (
        Message("system", "Be terse."),
        Message("user", "2+2?"),
        Message("assistant", "4"),
        Message("user", "3+3?"),
    ),
    Message("assistant", "6"),
    Message("assistant", "Seven, I think, or maybe eight."),
    source="pairs.jsonl",
    line=7,
)
KTO = PreferenceRecord((Message("user", "Capital of France?"),), Message("assistant", "Paris."), label=False)


@pytest.fixture(scope="module")
def records() -> list[PreferenceRecord]:
    return [
        rec for path in sorted(FIXTURES.glob("[!b]*.json*")) for rec in read_preference_file(path).records
    ]


@pytest.fixture(scope="module")
def tokenizer(records: list[PreferenceRecord]) -> PreTrainedTokenizerFast:
    texts = [render_text(rec.conversation(reply)) for rec in [*records, PAIR, KTO] for reply in rec.replies]
    return train_bpe_tokenizer(texts * 2, 600)


def _with_template(tok: PreTrainedTokenizerFast, template: str, pad: bool = True) -> PreTrainedTokenizerFast:
    copy = PreTrainedTokenizerFast(
        tokenizer_object=tok.backend_tokenizer,
        eos_token="<|im_end|>",
        **({"pad_token": "<|pad|>"} if pad else {}),
    )
    copy.chat_template = template
    return copy


def _trained(tok: PreTrainedTokenizerFast, labels: list[int]) -> str:
    return tok.decode([t for t in labels if t != IGNORE_INDEX], skip_special_tokens=False)


def _real(tok: PreTrainedTokenizerFast, enc: dict[str, list[int]], side: str) -> list[int]:
    return [t for t, m in zip(enc[f"{side}_input_ids"], enc[f"{side}_attention_mask"], strict=True) if m]


def _prompt_len(enc: dict[str, list[int]], side: str) -> int:
    return next(i for i, label in enumerate(enc[f"{side}_labels"]) if label != IGNORE_INDEX)


# ------------------------------------------------------------------------------------------ masks


@pytest.mark.parametrize("template", ["chatml", "auto", "llama3"])
def test_only_reply_tokens_are_trained_and_prompts_are_identical(tokenizer, template: str) -> None:
    enc = encode_preference(PAIR, tokenizer, template=template, max_seq_len=128, truncation="truncate")
    assert enc is not None and list(enc) == list(PAIRED_COLUMNS)
    end = "<|eot_id|>" if template == "llama3" else "<|im_end|>"
    assert _trained(tokenizer, enc["chosen_labels"]) == f"6{end}"  # content + end-of-turn, as SFT trains it
    assert _trained(tokenizer, enc["rejected_labels"]) == f"Seven, I think, or maybe eight.{end}"
    n = _prompt_len(enc, "chosen")
    assert n == _prompt_len(enc, "rejected")
    assert enc["chosen_input_ids"][:n] == enc["rejected_input_ids"][:n]  # one context for both replies
    trained = [i for i, label in enumerate(enc["chosen_labels"]) if label != IGNORE_INDEX]
    assert (
        enc["chosen_labels"][trained[0] : trained[-1] + 1]
        == enc["chosen_input_ids"][trained[0] : trained[-1] + 1]
    )
    if template != "llama3":  # the earlier answer "4" is context: the only trained span is the reply
        assert tokenizer.decode(_real(tokenizer, enc, "chosen"), skip_special_tokens=False) == render_text(
            PAIR.conversation(PAIR.chosen)  # type: ignore[arg-type]
        )


def test_tokenizer_chat_template_matches_chatml(tokenizer) -> None:
    jinja = _with_template(tokenizer, CHATML_JINJA)
    kw: dict[str, Any] = {"max_seq_len": 96, "truncation": "truncate"}
    by_jinja = encode_preference(PAIR, jinja, template="auto", **kw)
    by_name = encode_preference(PAIR, tokenizer, template="chatml", **kw)
    assert by_jinja is not None and by_name is not None
    for side in ("chosen", "rejected"):
        rendered = jinja.decode(_real(jinja, by_jinja, side), skip_special_tokens=False)
        assert rendered == render_text(PAIR.conversation(getattr(PAIR, side)))
        assert _trained(jinja, by_jinja[f"{side}_labels"]) == _trained(tokenizer, by_name[f"{side}_labels"])


def test_padding_and_attention_mask(tokenizer) -> None:
    enc = encode_preference(PAIR, tokenizer, template="chatml", max_seq_len=80, truncation="truncate")
    assert enc is not None
    for side in ("chosen", "rejected"):
        ids, labels, mask = (enc[f"{side}_{c}"] for c in ("input_ids", "labels", "attention_mask"))
        assert len(ids) == len(labels) == len(mask) == 80
        real = sum(mask)
        assert mask == [1] * real + [0] * (80 - real)
        assert ids[real:] == [tokenizer.pad_token_id] * (80 - real)
        assert labels[real:] == [IGNORE_INDEX] * (80 - real)
    no_pad = _with_template(tokenizer, "", pad=False)
    assert no_pad.pad_token_id is None
    enc = encode_preference(PAIR, no_pad, template="chatml", max_seq_len=80, truncation="truncate")
    assert enc is not None and enc["chosen_input_ids"][-1] == no_pad.eos_token_id  # pad falls back to EOS


def test_unpaired_record_gives_completion_columns_and_label(tokenizer) -> None:
    enc = encode_preference(KTO, tokenizer, template="chatml", max_seq_len=40, truncation="truncate")
    assert enc is not None and list(enc) == list(UNPAIRED_COLUMNS)
    assert enc["kto_label"] == [0]
    assert _trained(tokenizer, enc["completion_labels"]) == "Paris.<|im_end|>"


# ------------------------------------------------------------------------------------------ truncation


def _lengths(tok: PreTrainedTokenizerFast, rec: PreferenceRecord) -> tuple[int, list[int]]:
    pieces = preference_pieces(rec, tok, "chatml")
    prompt = sum(len(ids) for _, ids, _, _ in pieces.pop("prompt"))
    return prompt, [sum(len(ids) for _, ids, _, _ in ps) for ps in pieces.values()]


def test_truncate_cuts_the_prompt_head_and_keeps_replies_whole(tokenizer) -> None:
    prompt, replies = _lengths(tokenizer, PAIR)
    full = encode_preference(PAIR, tokenizer, template="chatml", max_seq_len=200, truncation="truncate")
    limit = max(replies) + 5  # room for the replies and the prompt's last 5 tokens
    result = encode_preference_result(
        PAIR, tokenizer, template="chatml", max_seq_len=limit, truncation="truncate"
    )
    assert (result.status, result.length) == ("truncated", prompt + max(replies))
    enc = result.columns
    assert enc is not None and full is not None
    for side, n in zip(("chosen", "rejected"), replies, strict=True):
        assert _prompt_len(enc, side) == 5
        kept = _real(tokenizer, enc, side)
        assert kept == _real(tokenizer, full, side)[prompt - 5 :]  # the prompt's last tokens + the reply
        assert _trained(tokenizer, enc[f"{side}_labels"]) == _trained(tokenizer, full[f"{side}_labels"])
        assert len(kept) == 5 + n
    assert enc["chosen_input_ids"][:5] == enc["rejected_input_ids"][:5]
    assert tokenizer.decode(enc["chosen_input_ids"][:5], skip_special_tokens=False).endswith("assistant\n")


def test_truncate_cuts_a_reply_tail_when_a_reply_alone_does_not_fit(tokenizer) -> None:
    prompt, replies = _lengths(tokenizer, PAIR)
    limit = max(replies) - 1
    result = encode_preference_result(
        PAIR, tokenizer, template="chatml", max_seq_len=limit, truncation="truncate"
    )
    enc = result.columns
    assert enc is not None and result.status == "truncated"
    keep_prompt = min(prompt, limit // 2)
    for side in ("chosen", "rejected"):
        assert _prompt_len(enc, side) == keep_prompt
        assert sum(enc[f"{side}_attention_mask"]) <= limit
        assert any(label != IGNORE_INDEX for label in enc[f"{side}_labels"])  # a trained token survives
    assert "<|im_end|>" not in _trained(tokenizer, enc["rejected_labels"])  # the long reply lost its tail
    assert _trained(tokenizer, enc["chosen_labels"]) == "6<|im_end|>"  # the short one is whole
    tiny = encode_preference(PAIR, tokenizer, template="chatml", max_seq_len=2, truncation="truncate")
    assert tiny is not None and [label != IGNORE_INDEX for label in tiny["chosen_labels"]] == [False, True]


def test_drop_returns_none(tokenizer) -> None:
    prompt, replies = _lengths(tokenizer, PAIR)
    kw: dict[str, Any] = {"template": "chatml", "truncation": "drop"}
    assert encode_preference(PAIR, tokenizer, max_seq_len=prompt + max(replies) - 1, **kw) is None
    result = encode_preference_result(PAIR, tokenizer, max_seq_len=prompt + max(replies) - 1, **kw)
    assert (result.columns, result.status) == (None, "dropped_too_long")
    assert encode_preference(PAIR, tokenizer, max_seq_len=prompt + max(replies), **kw) is not None
    with pytest.raises(ValueError, match="unknown truncation 'cut'"):
        encode_preference(PAIR, tokenizer, template="chatml", max_seq_len=64, truncation="cut")


# ------------------------------------------------------------------------------------------ guards


def test_a_template_that_renders_the_prompt_per_reply_is_refused(tokenizer, monkeypatch) -> None:
    import tuneforge.data.preference.encode as encode_module

    real = encode_module.record_pieces

    def leaky(conv: Any, tok: Any, template: str, **kw: Any) -> list:
        pieces = real(conv, tok, template, **kw)
        hint = conv.messages[-1].content[:1]  # a "template" whose prompt depends on the reply
        return [(hint, tok(hint, add_special_tokens=False)["input_ids"], False, "system"), *pieces]

    monkeypatch.setattr(encode_module, "record_pieces", leaky)
    with pytest.raises(ValueError, match="pairs.jsonl:7: template 'chatml' renders the prompt differently"):
        encode_preference(PAIR, tokenizer, template="chatml", max_seq_len=128, truncation="truncate")


def test_a_template_that_trains_nothing_is_refused(tokenizer) -> None:
    users_only = "{% for m in messages %}{% if m.role == 'user' %}{{ m.content }}{% endif %}{% endfor %}"
    silent = _with_template(tokenizer, users_only)
    with pytest.raises(ValueError, match="trained no token of the reply"):
        encode_preference(KTO, silent, template="tokenizer", max_seq_len=64, truncation="truncate")


# ------------------------------------------------------------------------------------------ stats


def test_stats_count_what_the_encoder_does(tokenizer, records: list[PreferenceRecord]) -> None:
    stats = preference_stats(records, tokenizer, "chatml", 24, "truncate")
    statuses = [
        encode_preference_result(
            r, tokenizer, template="chatml", max_seq_len=24, truncation="truncate"
        ).status
        for r in records
    ]
    assert stats["records"] == len(records) and stats["paired"] + stats["unpaired"] == len(records)
    assert stats["over_max_seq_len"] == stats["truncated"] == statuses.count("truncated") > 0
    assert stats["length"]["p50"] <= stats["length"]["max"]


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} not present on this machine")
def test_real_dpo_pairs_encode_with_identical_prompts(tokenizer) -> None:
    records = read_preference_file(SHARED / "llamafactory" / "dpo_en_demo.json").records[:40]
    out = encode_preference_batch(records, tokenizer, PreferenceSettings("chatml", 256))
    assert out["n_records"][0] == 40
    for i in range(40):
        n = int((out["chosen_labels"][i] == IGNORE_INDEX).argmin())
        assert n == int((out["rejected_labels"][i] == IGNORE_INDEX).argmin()) > 0
        assert (out["chosen_input_ids"][i, :n] == out["rejected_input_ids"][i, :n]).all()
