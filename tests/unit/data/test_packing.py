"""Packing, padding and collation -- and proof that packing is exact for a real HF Llama."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from tuneforge.data import IGNORE_INDEX, collate, pack_examples, pad_examples, to_model_inputs

PAD = 0


def _padding_tokens(row: dict[str, list[int]]) -> int:
    if "attention_mask" in row:
        return row["attention_mask"].count(0)
    # Packed: the pad tail is the block's last "document" (from its last position 0) when none of its
    # labels is trained. A real document always has a trained label after its first token
    # (encode_conversation drops records without one and trains no header token), so it never matches.
    positions = row["position_ids"]
    start = len(positions) - 1 - positions[::-1].index(0)
    return len(positions) - start if all(label == IGNORE_INDEX for label in row["labels"][start:]) else 0


def padding_share(blocks: Sequence[dict[str, list[int]]]) -> float:
    """Fraction of all token slots in ``blocks`` that are padding (0.0 for no blocks).

    Works for padded rows (``attention_mask`` zeros) and packed blocks (their untrained last document).
    """
    total = sum(len(b["input_ids"]) for b in blocks)
    return sum(_padding_tokens(b) for b in blocks) / total if total else 0.0


def _doc(rng: random.Random, n: int, prompt: int) -> dict[str, list[int]]:
    """A document of ``n`` random ids whose first ``prompt`` tokens are unlabelled (like a chat prompt)."""
    ids = [rng.randrange(1, 512) for _ in range(n)]
    return {"input_ids": ids, "labels": [IGNORE_INDEX] * prompt + ids[prompt:]}


def _docs(lengths: list[int], seed: int = 0) -> list[dict[str, list[int]]]:
    rng = random.Random(seed)
    return [_doc(rng, n, prompt=min(n - 1, rng.randrange(0, 4))) for n in lengths]


def _split_documents(block: dict[str, list[int]]) -> list[slice]:
    """Document spans of a packed block, from the position ids restarting at 0."""
    starts = [i for i, p in enumerate(block["position_ids"]) if p == 0] + [len(block["position_ids"])]
    return [slice(a, b) for a, b in zip(starts, starts[1:], strict=False)]


# ------------------------------------------------------------------------------------------ structure


def test_blocks_are_full_length_and_lose_no_token() -> None:
    docs = _docs([5, 9, 3, 12, 7, 1, 16, 4, 10])
    blocks = pack_examples(docs, max_seq_len=16, pad_id=PAD)
    assert all(len(b[key]) == 16 for b in blocks for key in ("input_ids", "labels", "position_ids"))
    assert set(blocks[0]) == {"input_ids", "labels", "position_ids"}
    recovered = []
    for block in blocks:
        spans = _split_documents(block)
        for span in spans:
            ids, labels, positions = (
                block["input_ids"][span],
                block["labels"][span],
                block["position_ids"][span],
            )
            assert positions == list(range(len(ids)))
            recovered.append((ids, labels))
    real = [(ids, labels) for ids, labels in recovered if set(ids) != {PAD}]  # docs never contain PAD
    tails = [labels for ids, labels in recovered if set(ids) == {PAD}]
    assert all(set(labels) == {IGNORE_INDEX} for labels in tails)
    assert sum(len(ids) for ids, _ in real) == sum(len(d["input_ids"]) for d in docs)
    by_ids = {tuple(ids): labels for ids, labels in real}
    for doc in docs:
        # Same tokens, same labels except the first one, which packing always masks.
        assert by_ids[tuple(doc["input_ids"])] == [IGNORE_INDEX, *doc["labels"][1:]]


def test_first_fit_fills_earlier_gaps_and_pads_the_tail() -> None:
    docs = _docs([10, 8, 6, 2])
    blocks = pack_examples(docs, max_seq_len=16, pad_id=PAD)
    # 10 -> block 0; 8 does not fit -> block 1; 6 fits block 0 exactly; 2 goes into block 1.
    assert len(blocks) == 2
    assert blocks[0]["input_ids"] == docs[0]["input_ids"] + docs[2]["input_ids"]
    assert blocks[1]["input_ids"] == docs[1]["input_ids"] + docs[3]["input_ids"] + [PAD] * 6
    assert blocks[1]["labels"][-6:] == [IGNORE_INDEX] * 6
    assert blocks[1]["position_ids"] == [*range(8), *range(2), *range(6)]
    assert padding_share(blocks) == pytest.approx(6 / 32)


def test_padding_share_is_small_for_many_examples() -> None:
    rng = random.Random(1)
    docs = _docs([rng.randint(8, 90) for _ in range(400)], seed=1)
    blocks = pack_examples(docs, max_seq_len=256, pad_id=PAD)
    real = sum(len(d["input_ids"]) for d in docs)
    assert padding_share(blocks) == pytest.approx(1 - real / (256 * len(blocks)))
    assert padding_share(blocks) < 0.05
    assert padding_share(pad_examples(docs, 256, PAD)) > 0.6  # what packing saves
    assert padding_share([]) == 0.0


def test_oversized_or_malformed_examples_are_refused() -> None:
    with pytest.raises(ValueError, match="does not fit max_seq_len=8"):
        pack_examples(_docs([9]), max_seq_len=8, pad_id=PAD)
    with pytest.raises(ValueError, match="does not fit"):
        pad_examples(_docs([9]), max_seq_len=8, pad_id=PAD)
    with pytest.raises(ValueError, match="differ in length"):
        pack_examples([{"input_ids": [1, 2], "labels": [1]}], max_seq_len=8, pad_id=PAD)


def test_pad_examples_rows() -> None:
    docs = _docs([3, 5])
    rows = pad_examples(docs, max_seq_len=6, pad_id=PAD)
    assert rows[0] == {
        "input_ids": docs[0]["input_ids"] + [PAD] * 3,
        "labels": docs[0]["labels"] + [IGNORE_INDEX] * 3,
        "attention_mask": [1, 1, 1, 0, 0, 0],
        "position_ids": [0, 1, 2, 3, 4, 5],
    }
    assert padding_share(rows) == pytest.approx(4 / 12)


def test_collate_and_model_inputs() -> None:
    packed = collate(pack_examples(_docs([3, 4, 6]), max_seq_len=8, pad_id=PAD))
    assert packed["input_ids"].dtype == torch.long and packed["input_ids"].shape == (2, 8)
    inputs = to_model_inputs(packed)
    assert set(inputs) == {"input_ids", "labels", "position_ids", "use_cache"}
    assert inputs["use_cache"] is False
    padded = collate(pad_examples(_docs([3, 4]), max_seq_len=8, pad_id=PAD))
    assert set(to_model_inputs(padded)) == {
        "input_ids",
        "labels",
        "attention_mask",
        "position_ids",
        "use_cache",
    }
    with pytest.raises(ValueError, match="needs position_ids"):
        to_model_inputs({k: v for k, v in packed.items() if k != "position_ids"})
    with pytest.raises(ValueError, match="different keys"):
        collate([*pack_examples(_docs([3]), 8, PAD), *pad_examples(_docs([3]), 8, PAD)])


# ------------------------------------------------------------------------------------------ exactness

DOC_LENGTHS = [5, 9, 3, 12, 7, 4, 10, 2]
MAX_SEQ_LEN = 24


@pytest.fixture(params=["sdpa", "eager"])
def model(request: pytest.FixtureRequest) -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=512,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        attn_implementation=request.param,
    )
    llama = LlamaForCausalLM(config).float().eval()
    assert llama.config._attn_implementation == request.param
    assert llama.config.use_cache  # the default that would silently disable packed-sequence detection
    return llama


def _alone(model: LlamaForCausalLM, doc: dict[str, list[int]]) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Logits, mean loss and labelled-token count of one document run by itself."""
    labels = [IGNORE_INDEX, *doc["labels"][1:]]
    out = model(input_ids=torch.tensor([doc["input_ids"]]), labels=torch.tensor([labels]))
    return out.logits[0], out.loss, sum(label != IGNORE_INDEX for label in labels[1:])


@torch.no_grad()
def test_packed_equals_documents_run_one_by_one(model: LlamaForCausalLM) -> None:
    docs = _docs(DOC_LENGTHS, seed=3)
    blocks = pack_examples(docs, MAX_SEQ_LEN, PAD)
    assert len(blocks) == 3 and any(len(_split_documents(b)) >= 3 for b in blocks)
    out = model(**to_model_inputs(collate(blocks)))

    alone = [_alone(model, doc) for doc in docs]
    weighted = sum(loss * n for _, loss, n in alone) / sum(n for _, _, n in alone)
    assert out.loss.item() == pytest.approx(weighted.item(), abs=1e-5)

    by_ids = {tuple(doc["input_ids"]): logits for doc, (logits, _, _) in zip(docs, alone, strict=True)}
    checked = 0
    for row, block in enumerate(blocks):
        for span in _split_documents(block):
            key = tuple(block["input_ids"][span])
            if key in by_ids:
                torch.testing.assert_close(out.logits[row, span], by_ids[key], atol=1e-5, rtol=0)
                checked += 1
    assert checked == len(docs)


@torch.no_grad()
def test_packing_without_the_boundaries_would_leak(model: LlamaForCausalLM) -> None:
    """Negative control: the comparison above does detect cross-document attention."""
    docs = _docs(DOC_LENGTHS, seed=3)
    batch = collate(pack_examples(docs, MAX_SEQ_LEN, PAD))
    exact = model(**to_model_inputs(batch)).logits
    with_cache = model(**{**to_model_inputs(batch), "use_cache": True}).logits
    with_ones_mask = model(
        **to_model_inputs({**batch, "attention_mask": torch.ones_like(batch["input_ids"])})
    ).logits
    assert (exact - with_cache).abs().max() > 1e-3
    assert (exact - with_ones_mask).abs().max() > 1e-3


@torch.no_grad()
def test_padded_batch_matches_unpadded(model: LlamaForCausalLM) -> None:
    docs = _docs(DOC_LENGTHS, seed=4)
    batch = collate(pad_examples(docs, max_seq_len=16, pad_id=PAD))
    out = model(**to_model_inputs(batch))
    for row, doc in enumerate(docs):
        n = len(doc["input_ids"])
        alone = model(input_ids=torch.tensor([doc["input_ids"]])).logits[0]
        torch.testing.assert_close(out.logits[row, :n], alone, atol=1e-5, rtol=0)


@pytest.mark.gpu
@torch.no_grad()
def test_packed_flash_attention_varlen_equals_documents_run_one_by_one() -> None:
    """On GPU the packed path runs FlashAttention's varlen kernel (transformers derives the document
    boundaries from the restarting ``position_ids``): no attention across documents, at no padding."""
    import importlib.util

    if not torch.cuda.is_available():
        pytest.skip("needs CUDA: FlashAttention runs on GPUs only")
    if importlib.util.find_spec("flash_attn") is None:
        pytest.skip("needs the flash-attn package (pip install flash-attn)")
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=512, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
        num_attention_heads=4, attn_implementation="flash_attention_2",
    )  # fmt: skip
    llama = LlamaForCausalLM(config).to("cuda", torch.bfloat16).eval()
    docs = _docs(DOC_LENGTHS, seed=3)
    blocks = pack_examples(docs, MAX_SEQ_LEN, PAD)
    inputs = {k: v.cuda() for k, v in to_model_inputs(collate(blocks)).items()}
    packed = llama(**inputs).logits.float()
    for row, block in enumerate(blocks):
        for span in _split_documents(block):
            ids = torch.tensor([block["input_ids"][span]], device="cuda")
            alone = llama(input_ids=ids).logits[0].float()
            torch.testing.assert_close(packed[row, span], alone, atol=3e-2, rtol=3e-2)


def test_best_fit_decreasing_fills_blocks_first_fit_in_order_would_leave_half_empty() -> None:
    """Lengths 4, 3, 6, 7 into blocks of 10: first-fit in input order needs three blocks (4+3, 6, 7),
    best-fit decreasing two full ones (7+3, 6+4), with every document intact and positions restarting."""
    docs = [{"input_ids": [n] * n, "labels": [n] * n} for n in (4, 3, 6, 7)]
    blocks = pack_examples(docs, 10, PAD)
    assert len(blocks) == 2 and all(PAD not in b["input_ids"] for b in blocks)
    assert sorted(tuple(b["input_ids"]) for b in blocks) == sorted([(6,) * 6 + (4,) * 4, (7,) * 7 + (3,) * 3])
    for block in blocks:
        starts = [i for i, p in enumerate(block["position_ids"]) if p == 0]
        assert [block["labels"][i] for i in starts] == [IGNORE_INDEX] * len(starts)


def test_blocks_keep_the_input_order_of_their_earliest_document() -> None:
    """Packing decreasing by length must not sort the stream by length: blocks come in the input
    order of their earliest document."""
    lengths = (2, 9, 3, 8, 5, 6)
    docs = [{"input_ids": [i + 1] * n, "labels": [i + 1] * n} for i, n in enumerate(lengths)]
    blocks = pack_examples(docs, 10, PAD)
    earliest = [min(t for t in b["input_ids"] if t != PAD) for b in blocks]
    assert earliest == sorted(earliest) and earliest[0] == 1
