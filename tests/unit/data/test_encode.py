"""Loss masks under every template: tool calls, tools in the system prompt, weight-0 turns,
last_turn_only, named text templates, a tokenizer's own Jinja chat_template, and raw text."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import PreTrainedTokenizerFast

from tuneforge.data import IGNORE_INDEX, Conversation, Message, encode_record, read_conversations, render_text
from tuneforge.data.encode import record_pieces, resolve_template
from tuneforge.data.templates import tools_block
from tuneforge.models.tokenizer import train_bpe_tokenizer

ASSETS = Path(__file__).resolve().parents[3] / "platform" / "tuneforge" / "assets" / "data"
CALL = {"id": "c1", "name": "takeoff", "arguments": {"altitude": 100}}
TOOLS = ({"type": "function", "function": {"name": "takeoff", "parameters": {"type": "object"}}},)
CONV = Conversation(
    (
        Message("system", "You fly drones."),
        Message("user", "Take off."),
        Message("assistant", "", tool_calls=(CALL,)),
        Message("tool", '{"ok": true}', name="takeoff"),
        Message("assistant", "Airborne.", train=False),
        Message("user", "Status?"),
        Message("assistant", "Hovering at 100 m."),
    ),
    tools=TOOLS,
)
CHATML_JINJA = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}"
    "{% if m.tool_calls %}{% for c in m.tool_calls %}<tool_call>{{ c.function | tojson }}</tool_call>"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerFast:
    convs = [*read_conversations(ASSETS / "tiny_chat.jsonl"), CONV]
    return train_bpe_tokenizer([render_text(c) for c in convs] * 2, 600)


def _runs(tok: PreTrainedTokenizerFast, enc: dict[str, list[int]]) -> list[str]:
    """The decoded maximal runs of trained tokens."""
    runs: list[list[int]] = []
    prev = IGNORE_INDEX
    for label in enc["labels"]:
        if label != IGNORE_INDEX:
            if prev == IGNORE_INDEX:
                runs.append([])
            runs[-1].append(label)
        prev = label
    return [tok.decode(r, skip_special_tokens=False) for r in runs]


def _encode(conv: Conversation, tok: PreTrainedTokenizerFast, template: str = "chatml", **kw: object) -> dict:
    result = encode_record(conv, tok, template, **kw)  # type: ignore[arg-type]
    assert len(result.examples) == 1
    return result.examples[0]


def test_chatml_renders_tools_and_tool_calls() -> None:
    text = render_text(CONV)
    assert text.startswith("<|im_start|>system\nYou fly drones.\n\n# Tools\n")
    assert tools_block(TOOLS) in text
    call = (
        '<|im_start|>assistant\n<tool_call>\n{"name": "takeoff", "arguments": {"altitude": 100}}\n'
        "</tool_call><|im_end|>\n"
    )
    assert call in text
    assert '<|im_start|>tool\n{"ok": true}<|im_end|>\n' in text


def test_tool_calls_are_trained_and_weight_zero_and_system_and_tool_results_are_not(tokenizer) -> None:
    enc = _encode(CONV, tokenizer)
    call = '<tool_call>\n{"name": "takeoff", "arguments": {"altitude": 100}}\n</tool_call><|im_end|>'
    assert _runs(tokenizer, enc) == [call, "Hovering at 100 m.<|im_end|>"]
    assert tokenizer.decode(enc["input_ids"], skip_special_tokens=False) == render_text(CONV)


def test_last_turn_only_and_train_on_prompt(tokenizer) -> None:
    assert _runs(tokenizer, _encode(CONV, tokenizer, last_turn_only=True)) == ["Hovering at 100 m.<|im_end|>"]
    enc = _encode(CONV, tokenizer, train_on_prompt=True)
    assert IGNORE_INDEX not in enc["labels"]


def test_multi_turn_without_tools_masks_every_answer(tokenizer) -> None:
    conv = Conversation(
        (Message("user", "a?"), Message("assistant", "A."), Message("user", "b?"), Message("assistant", "B."))
    )
    assert _runs(tokenizer, _encode(conv, tokenizer)) == ["A.<|im_end|>", "B.<|im_end|>"]


@pytest.mark.parametrize(
    ("template", "expected_text", "spans"),
    [
        ("llama3",
         "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHello<|eot_id|>",
         ["Hello<|eot_id|>"]),
        ("alpaca", "### Instruction:\nHi\n\n### Response:\nHello<|im_end|>\n\n", ["Hello<|im_end|>"]),
    ],
)  # fmt: skip
def test_named_text_templates(tokenizer, template: str, expected_text: str, spans: list[str]) -> None:
    conv = Conversation((Message("user", "Hi"), Message("assistant", "Hello")))
    assert render_text(conv, template, eos="<|im_end|>") == expected_text
    enc = _encode(conv, tokenizer, template)
    assert _runs(tokenizer, enc) == spans
    assert tokenizer.decode(enc["input_ids"], skip_special_tokens=False) == expected_text


def _with_template(tok: PreTrainedTokenizerFast, template: str) -> PreTrainedTokenizerFast:
    copy = PreTrainedTokenizerFast(
        tokenizer_object=tok.backend_tokenizer, pad_token="<|pad|>", eos_token="<|im_end|>"
    )
    copy.chat_template = template
    return copy


def test_tokenizer_chat_template_masks_exactly_the_assistant_turns(tokenizer) -> None:
    tok = _with_template(tokenizer, CHATML_JINJA)
    assert resolve_template("auto", tok) == "tokenizer" and resolve_template("auto", tokenizer) == "chatml"
    conv = Conversation(CONV.messages)  # no tools: this small template does not render them
    enc = _encode(conv, tok, "auto")
    hf = []
    for m in conv.messages:
        d: dict = {"role": m.role, "content": m.content}
        if m.tool_calls:
            d["tool_calls"] = [
                {"type": "function", "function": {"name": "takeoff", "arguments": {"altitude": 100}}}
            ]
        hf.append(d)
    rendered = tok.apply_chat_template(hf, tokenize=False)
    assert tok.decode(enc["input_ids"], skip_special_tokens=False) == rendered
    call = '<tool_call>{"name": "takeoff", "arguments": {"altitude": 100}}</tool_call><|im_end|>'
    assert _runs(tok, enc) == [call, "Hovering at 100 m.<|im_end|>"]
    roles = {role for _, _, trained, role in record_pieces(conv, tok, "tokenizer") if trained}
    assert roles == {"assistant"}


def test_tokenizer_template_that_rewrites_history_is_rejected(tokenizer) -> None:
    unstable = (
        "{% for m in messages %}{% if loop.last %}[{{ m.content }}]{% else %}{{ m.content }}{% endif %}"
        "{% endfor %}"
    )
    tok = _with_template(tokenizer, unstable)
    conv = Conversation(
        (Message("user", "a"), Message("assistant", "b"), Message("user", "c"), Message("assistant", "d"))
    )
    with pytest.raises(ValueError, match="not prefix-stable"):
        encode_record(conv, tok, "tokenizer")
    with pytest.raises(ValueError, match="has no chat_template"):
        encode_record(conv, tokenizer, "tokenizer")


def test_raw_text_is_chunked_and_fully_trained(tokenizer) -> None:
    text = " ".join(f"word{i}" for i in range(200))
    conv = Conversation((Message("assistant", text, train=True),), mode="pretrain")
    whole = encode_record(conv, tokenizer, "chatml")
    assert whole.status == "ok" and whole.examples[0]["input_ids"][-1] == tokenizer.eos_token_id
    result = encode_record(conv, tokenizer, "chatml", max_seq_len=64, truncation="drop")
    assert result.status == "chunked" and result.length == len(whole.examples[0]["input_ids"])
    assert all(len(e["input_ids"]) <= 64 and e["labels"] == e["input_ids"] for e in result.examples)
    assert sum((e["input_ids"] for e in result.examples), []) == whole.examples[0]["input_ids"][: sum(
        len(e["input_ids"]) for e in result.examples)]  # fmt: skip
    assert render_text(conv) == text  # no chat markup around raw text


def test_length_policy_statuses(tokenizer) -> None:
    conv = Conversation((Message("user", "x " * 50), Message("assistant", "y " * 50)))
    full = encode_record(conv, tokenizer)
    prompt = full.examples[0]["labels"].count(IGNORE_INDEX)
    limit = prompt + 5
    assert full.length > limit
    assert encode_record(conv, tokenizer, max_seq_len=limit, truncation="drop").status == "dropped_too_long"
    cut = encode_record(conv, tokenizer, max_seq_len=limit, truncation="truncate")
    assert cut.status == "truncated" and cut.examples[0]["input_ids"] == full.examples[0]["input_ids"][:limit]
    assert encode_record(conv, tokenizer, max_seq_len=prompt - 1).status == "no_trained_tokens"
