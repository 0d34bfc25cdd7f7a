"""Record rows and tokenize-and-block, without Ray: the rows between the two Ray Data stages carry
plain columns (no serialized IR), and tokenizing them gives exactly the rows the IR itself gives."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from tuneforge.data import Conversation, DataError, Message
from tuneforge.data.packing import IGNORE_INDEX
from tuneforge.data.plan import plan_data
from tuneforge.data.record_rows import (
    ROW_COLUMNS,
    SplitRules,
    file_items,
    file_rows,
    record_row,
    row_conversations,
)
from tuneforge.data.tokenize_blocks import COUNTERS, SOURCE_TOKENS, EncodeSettings, tokenize_and_block
from tuneforge.models.tokenizer import train_bpe_tokenizer

CALL = {"id": "c1", "name": "get_weather", "arguments": {"city": "Oslo", "days": [1, 2], "unit": None}}
TOOLS = ({"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}},)


def _convs() -> list[Conversation]:
    return [
        Conversation((Message("user", "hi"), Message("assistant", "hello there"))),
        Conversation(
            (
                Message("system", "use tools"),
                Message("user", "weather in Oslo?"),
                Message("assistant", "", tool_calls=(CALL,)),
                Message("tool", "3 C", name="get_weather"),
                Message("assistant", "cold: 3 C", train=False),
                Message("user", "thanks"),
                Message("assistant", "you are welcome", train=True),
            ),
            tools=TOOLS,
        ),
        Conversation((Message("assistant", "raw text " * 30, train=True),), mode="pretrain"),
        Conversation((Message("user", "long " * 40), Message("assistant", "ok " * 60)), mode="instruct"),
    ]


def _through_arrow(rows: list[dict]) -> dict[str, list]:
    """What Ray Data does between the stages: rows -> an Arrow block -> a pyarrow batch -> Python."""
    table = pa.Table.from_pylist(rows)
    assert table.schema.field("roles").type == pa.list_(pa.string())
    assert table.schema.field("train").type == pa.list_(pa.int64())
    assert table.schema.field("tools").type == pa.string()
    return {c: table.column(c).to_pylist() for c in ROW_COLUMNS}


def test_record_rows_carry_what_tokenizing_needs() -> None:
    convs = _convs()
    rows = [record_row(c, src) for src, c in enumerate(convs)]
    assert rows[0]["tools"] == "" and rows[0]["train"] == [-1, -1]  # plain chat: nothing to parse
    back = row_conversations(_through_arrow(rows))
    for before, after in zip(convs, back, strict=True):
        assert after.messages == before.messages  # roles, contents, train flags, tool calls, names
        assert after.tools == before.tools and after.mode == before.mode
        assert after.content_hash() == before.content_hash()


@pytest.fixture(scope="module")
def tokenizer():
    texts = [json.dumps(c.to_dict()) for c in _convs()] * 5
    return train_bpe_tokenizer(texts, 400)


@pytest.mark.parametrize("packing", [True, False])
@pytest.mark.parametrize("template", ["chatml", "auto"])
def test_tokenized_rows_equal_those_of_the_json_round_trip(tokenizer, packing: bool, template: str) -> None:
    """Byte-identical to what the pipeline tokenized before (the IR serialized to JSON and parsed)."""
    convs = _convs() * 3
    sources = [i % 2 for i in range(len(convs))]
    settings = EncodeSettings(template, 48, packing)
    via_json = [Conversation.from_dict(json.loads(json.dumps(c.to_dict()))) for c in convs]
    via_rows = row_conversations(
        _through_arrow([record_row(c, s) for c, s in zip(convs, sources, strict=True)])
    )
    old = tokenize_and_block(via_json, sources, tokenizer=tokenizer, settings=settings, n_sources=2)
    new = tokenize_and_block(via_rows, sources, tokenizer=tokenizer, settings=settings, n_sources=2)
    assert old.keys() == new.keys() and all(old[k].tobytes() == new[k].tobytes() for k in old)
    assert all(old[k].dtype == new[k].dtype == np.int64 for k in old)
    # every trained token is counted for exactly one source; counters ride on the first row
    assert (new[SOURCE_TOKENS].sum(axis=1) == (new["labels"] != IGNORE_INDEX).sum(axis=1)).all()
    assert all(new[c][1:].sum() == 0 for c in COUNTERS)
    assert new["n_docs"][0] + new["n_dropped"][0] == len(convs)
    assert new["input_ids"].shape[1] == 48 and set(settings.columns) <= new.keys()


def test_empty_batch(tokenizer) -> None:
    out = tokenize_and_block([], [], tokenizer=tokenizer, settings=EncodeSettings("chatml", 16, True))
    assert out["input_ids"].shape == (0, 16) and out[SOURCE_TOKENS].shape == (0, 1)


@dataclass
class Spec:
    path: str
    format: str = "auto"
    weight: float | None = None
    name: str | None = None


def test_file_rows_refuse_a_file_changed_since_the_plan(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    records = [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]}
               for i in range(20)]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    plan = plan_data([Spec(str(path))], [], eval_fraction=0.2, seed=1)
    (item,) = file_items(plan, "train")
    assert item["sha256"] == plan.sources[0].sha256
    rules = {t: SplitRules.of(plan, t, eval_fraction=0.2, seed=1, has_eval_files=False, on_bad="error")
             for t in ("train", "eval")}  # fmt: skip
    train, evald = (file_rows(item, rules[t]) for t in ("train", "eval"))
    assert (len(train), len(evald)) == (plan.sources[0].train_records, plan.sources[0].eval_records)
    assert all(set(r) == set(ROW_COLUMNS) and r["src"] == 0 for r in train + evald)
    path.write_text(path.read_text().replace("q3", "q3 edited"))
    with pytest.raises(DataError, match="changed after the data plan"):
        file_rows(item, rules["train"])
