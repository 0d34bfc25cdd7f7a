"""ChatML rendering and encoding: exact loss masks, truncation, and segment-wise tokenization."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from tuneforge.data import (
    IGNORE_INDEX,
    Conversation,
    Message,
    encode_conversation,
    get_template,
    read_conversations,
    render_prompt,
    render_text,
)
from tuneforge.models.tokenizer import SPECIAL_TOKENS

ASSETS = Path(__file__).resolve().parents[3] / "platform" / "tuneforge" / "assets" / "data"


def _bundled() -> list[Conversation]:
    return [
        *read_conversations(ASSETS / "tiny_chat.jsonl"),
        *read_conversations(ASSETS / "tiny_alpaca.jsonl"),
    ]


def _train_tokenizer(texts: Sequence[str], special_tokens: Sequence[str]) -> Tokenizer:
    """The tiny setup the project uses without a hub: ByteLevel BPE, 512 tokens."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=list(special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    return tok


@pytest.fixture(scope="module")
def bundled() -> list[Conversation]:
    return _bundled()


@pytest.fixture(scope="module")
def tokenizer(bundled: list[Conversation]) -> PreTrainedTokenizerFast:
    tok = _train_tokenizer([render_text(c) for c in bundled], SPECIAL_TOKENS)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<|pad|>", eos_token="<|im_end|>")


def _trained_runs(labels: list[int]) -> list[list[int]]:
    """Maximal runs of consecutive labelled tokens."""
    runs: list[list[int]] = []
    previous = IGNORE_INDEX
    for label in labels:
        if label != IGNORE_INDEX:
            if previous == IGNORE_INDEX:
                runs.append([])
            runs[-1].append(label)
        previous = label
    return runs


def _decode(tokenizer: PreTrainedTokenizerFast, ids: list[int]) -> str:
    return tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)


def _expected_spans(conv: Conversation) -> list[str]:
    return [m.content + "<|im_end|>" for m in conv.messages if m.trained]


CONV = Conversation(
    (
        Message("system", "Be brief."),
        Message("user", "Spell 'cat' backwards."),
        Message("assistant", "tac", train=False),
        Message("user", "And 'dog'?"),
        Message("assistant", "god"),
    )
)


def test_render_text_is_chatml() -> None:
    assert render_text(CONV) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nSpell 'cat' backwards.<|im_end|>\n"
        "<|im_start|>assistant\ntac<|im_end|>\n"
        "<|im_start|>user\nAnd 'dog'?<|im_end|>\n"
        "<|im_start|>assistant\ngod<|im_end|>\n"
    )


def test_render_prompt_stops_at_the_open_assistant_header() -> None:
    expected = render_text(CONV).removesuffix("god<|im_end|>\n")
    assert render_prompt(CONV) == expected
    assert render_prompt(CONV.messages[:4]) == expected
    assert render_prompt([Message("user", "hi")]) == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_unknown_template_lists_known_ones(tokenizer: PreTrainedTokenizerFast) -> None:
    # llama3 is a registered template now; an unknown name lists every choice.
    known = r"known: auto, alpaca, chatml, llama3, tokenizer"
    with pytest.raises(ValueError, match=rf"unknown chat template 'vicuna'; {known}"):
        get_template("vicuna")
    with pytest.raises(ValueError, match="unknown chat template"):
        encode_conversation(CONV, tokenizer, template="vicuna")


def test_special_tokens_are_single_tokens(tokenizer: PreTrainedTokenizerFast) -> None:
    for token in SPECIAL_TOKENS:
        assert len(tokenizer(token, add_special_tokens=False)["input_ids"]) == 1
    assert tokenizer.bos_token_id is None


def test_trained_spans_are_exactly_assistant_contents(
    tokenizer: PreTrainedTokenizerFast, bundled: list[Conversation]
) -> None:
    for conv in bundled:
        enc = encode_conversation(conv, tokenizer)
        assert enc is not None
        runs = _trained_runs(enc["labels"])
        assert [_decode(tokenizer, run) for run in runs] == _expected_spans(conv), conv
        # Labels, where set, are the input ids themselves (HF shifts them inside the loss).
        assert all(
            lab in (IGNORE_INDEX, tok) for lab, tok in zip(enc["labels"], enc["input_ids"], strict=True)
        )


def test_system_and_user_tokens_are_all_masked(tokenizer: PreTrainedTokenizerFast) -> None:
    enc = encode_conversation(CONV, tokenizer)
    assert enc is not None
    prompt_len = len(tokenizer(render_prompt(CONV), add_special_tokens=False)["input_ids"])
    assert enc["labels"][:prompt_len] == [IGNORE_INDEX] * prompt_len
    god = tokenizer("god<|im_end|>", add_special_tokens=False)["input_ids"]
    assert enc["labels"][prompt_len:] == [*god, IGNORE_INDEX]  # the "\n" after <|im_end|> stays masked


def test_weight_zero_turn_is_masked(tokenizer: PreTrainedTokenizerFast) -> None:
    enc = encode_conversation(CONV, tokenizer)
    assert enc is not None
    assert [_decode(tokenizer, run) for run in _trained_runs(enc["labels"])] == ["god<|im_end|>"]
    everything = Conversation(tuple(Message(m.role, m.content) for m in CONV.messages))
    enc_default = encode_conversation(everything, tokenizer)
    assert enc_default is not None
    runs = [_decode(tokenizer, run) for run in _trained_runs(enc_default["labels"])]
    assert runs == ["tac<|im_end|>", "god<|im_end|>"]


def test_train_on_prompt_trains_every_token(tokenizer: PreTrainedTokenizerFast) -> None:
    enc = encode_conversation(CONV, tokenizer, train_on_prompt=True)
    assert enc is not None
    assert enc["labels"] == enc["input_ids"]


def test_segment_ids_equal_whole_string_ids(
    tokenizer: PreTrainedTokenizerFast, bundled: list[Conversation]
) -> None:
    for conv in [CONV, *bundled]:
        enc = encode_conversation(conv, tokenizer)
        assert enc is not None
        assert enc["input_ids"] == tokenizer(render_text(conv), add_special_tokens=False)["input_ids"]


def test_bundled_records_are_short(tokenizer: PreTrainedTokenizerFast, bundled: list[Conversation]) -> None:
    encoded = [encode_conversation(c, tokenizer) for c in bundled]
    assert max(len(enc["input_ids"]) for enc in encoded if enc is not None) < 100
    assert None not in encoded


def test_truncate_keeps_the_head_and_drop_drops(tokenizer: PreTrainedTokenizerFast) -> None:
    full = encode_conversation(CONV, tokenizer)
    assert full is not None
    n = len(full["input_ids"]) - 2  # cuts the final "<|im_end|>\n" but keeps part of the trained answer
    cut = encode_conversation(CONV, tokenizer, max_seq_len=n)
    assert cut == {"input_ids": full["input_ids"][:n], "labels": full["labels"][:n]}
    assert encode_conversation(CONV, tokenizer, max_seq_len=n, truncation="drop") is None
    assert encode_conversation(CONV, tokenizer, max_seq_len=len(full["input_ids"]), truncation="drop") == full
    with pytest.raises(ValueError, match="unknown truncation 'cut'"):
        encode_conversation(CONV, tokenizer, truncation="cut")


def test_nothing_left_to_train_returns_none(tokenizer: PreTrainedTokenizerFast) -> None:
    prompt_len = len(tokenizer(render_prompt(CONV), add_special_tokens=False)["input_ids"])
    assert encode_conversation(CONV, tokenizer, max_seq_len=prompt_len) is None
    assert encode_conversation(CONV, tokenizer, max_seq_len=prompt_len + 1) is not None
    untrained = Conversation((Message("user", "hi"), Message("assistant", "hello", train=False)))
    assert encode_conversation(untrained, tokenizer) is None


def test_marker_text_in_content_cannot_forge_a_turn(tokenizer: PreTrainedTokenizerFast) -> None:
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    conv = Conversation((Message("user", "say <|im_end|> please"), Message("assistant", "ok")))
    enc = encode_conversation(conv, tokenizer)
    assert enc is not None
    assert enc["input_ids"].count(im_end) == 2  # the end of each turn, not the literal in the user text
    assert _decode(tokenizer, enc["input_ids"]) == render_text(conv)


def test_works_when_markers_are_plain_text(bundled: list[Conversation]) -> None:
    tok = _train_tokenizer([render_text(c) for c in bundled[:200]], special_tokens=[])
    plain = PreTrainedTokenizerFast(tokenizer_object=tok)
    assert len(plain("<|im_start|>", add_special_tokens=False)["input_ids"]) > 1
    for conv in [CONV, *bundled[:50]]:
        enc = encode_conversation(conv, plain)
        assert enc is not None
        assert [_decode(plain, run) for run in _trained_runs(enc["labels"])] == _expected_spans(conv)


def test_bos_is_added_only_when_the_tokenizer_adds_it(bundled: list[Conversation]) -> None:
    tok = _train_tokenizer([render_text(c) for c in bundled[:200]], [*SPECIAL_TOKENS, "<s>"])
    bos_id = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", bos_id)])
    with_bos = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", pad_token="<|pad|>")
    enc = encode_conversation(CONV, with_bos)
    assert enc is not None
    assert enc["input_ids"][0] == bos_id and enc["labels"][0] == IGNORE_INDEX
    assert enc["input_ids"].count(bos_id) == 1
    # A BOS token that the tokenizer does not add by default is not added either.
    no_post = _train_tokenizer([render_text(c) for c in bundled[:200]], [*SPECIAL_TOKENS, "<s>"])
    unused_bos = PreTrainedTokenizerFast(tokenizer_object=no_post, bos_token="<s>", pad_token="<|pad|>")
    enc = encode_conversation(CONV, unused_bos)
    assert enc is not None and bos_id not in enc["input_ids"]
