"""A preference record -> fixed-length token columns for a preference loss, through the SFT templates.

Each side is rendered as the SFT chat record ``prompt + (reply,)`` by ``data.encode.record_pieces``
(any template: ``auto``, ``tokenizer``, ``chatml``, ``llama3``, ...), with only the reply trained:
its labels cover exactly what SFT trains in an assistant turn (content + end-of-turn marker). The
pieces before the first trained one are the prompt, and **the prompt tokens of chosen and rejected
must be identical**: the losses compare log-probabilities of two replies to one context, and a
template whose prompt rendering depends on the reply would make them compare different contexts.
That is checked, not assumed.

Too long (``prompt + longest reply > max_seq_len``): ``truncation="drop"`` drops the record;
``"truncate"`` keeps the prompt's *last* tokens (the question and the assistant header sit at its
end) and both replies whole when they fit; when a reply alone does not fit, the prompt keeps its
last ``max_seq_len // 2`` tokens and each reply keeps its head. Either way every side keeps at
least one trained token, and chosen and rejected keep the same prompt tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

from tuneforge.data.encode import record_pieces
from tuneforge.data.ir import Message
from tuneforge.data.preference.ir import PreferenceRecord
from tuneforge.data.templates import IGNORE_INDEX, TRUNCATION_MODES, Piece, pieces_to_example

PAIRED_COLUMNS: tuple[str, ...] = (
    "chosen_input_ids", "chosen_labels", "chosen_attention_mask",
    "rejected_input_ids", "rejected_labels", "rejected_attention_mask",
)  # fmt: skip
UNPAIRED_COLUMNS: tuple[str, ...] = (
    "completion_input_ids", "completion_labels", "completion_attention_mask", "kto_label",
)  # fmt: skip


@dataclass
class PreferenceEncoding:
    """One record's columns (None when dropped) and what happened to it."""

    columns: dict[str, list[int]] | None
    status: str  # "ok", "truncated" or "dropped_too_long"
    length: int  # prompt + longest reply, in tokens, before truncation


def pad_id(tokenizer: object) -> int:
    """The pad token, else EOS (padded positions are masked out of attention and loss either way)."""
    for name in ("pad_token_id", "eos_token_id"):
        value = getattr(tokenizer, name, None)
        if value is not None:
            return int(value)
    raise ValueError("the tokenizer has neither a pad nor an eos token to pad preference rows with")


def _split(
    record: PreferenceRecord, reply: Message, tokenizer: object, template: str
) -> tuple[list[Piece], list[Piece]]:
    """(prompt pieces, reply pieces) of one side: everything before the reply's first trained token."""
    pieces = record_pieces(record.conversation(reply), tokenizer, template, last_turn_only=True)
    first = next((i for i, p in enumerate(pieces) if p[2] and p[1]), None)
    if first is None:
        raise ValueError(
            f"{record.source}:{record.line}: template {template!r} trained no token of the reply; "
            "use data.template=chatml or a named template"
        )
    return pieces[:first], pieces[first:]


def _ids(pieces: list[Piece]) -> list[int]:
    return [t for _, ids, _, _ in pieces for t in ids]


def preference_pieces(
    record: PreferenceRecord, tokenizer: object, template: str = "auto"
) -> dict[str, list[Piece]]:
    """The rendered pieces: ``{"prompt", "chosen", "rejected"}`` (paired) or ``{"prompt", "completion"}``.

    Raises ValueError when the template renders the prompt differently for the two replies.
    """
    assert record.chosen is not None  # PreferenceRecord.__post_init__
    prompt, chosen = _split(record, record.chosen, tokenizer, template)
    if record.rejected is None:
        return {"prompt": prompt, "completion": chosen}
    prompt_r, rejected = _split(record, record.rejected, tokenizer, template)
    if _ids(prompt) != _ids(prompt_r):
        raise ValueError(
            f"{record.source}:{record.line}: template {template!r} renders the prompt differently for the "
            "chosen and the rejected reply, so the two sides would not share one context; use "
            "data.template=chatml or a named template"
        )
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected}


def fit_lengths(n_prompt: int, longest: int, max_seq_len: int) -> tuple[int, int]:
    """(prompt tokens kept from its end, reply tokens kept from their start) under ``truncation=truncate``."""
    if n_prompt + longest <= max_seq_len:
        return n_prompt, longest
    if longest < max_seq_len:
        return max_seq_len - longest, longest
    keep_prompt = min(n_prompt, max_seq_len // 2)
    return keep_prompt, max_seq_len - keep_prompt


def encode_preference_result(
    record: PreferenceRecord, tokenizer: object, *, template: str, max_seq_len: int, truncation: str
) -> PreferenceEncoding:
    """``encode_preference`` with the status (ok / truncated / dropped_too_long) and original length."""
    if truncation not in TRUNCATION_MODES:
        raise ValueError(f"unknown truncation {truncation!r}; expected one of {', '.join(TRUNCATION_MODES)}")
    if max_seq_len < 2:
        raise ValueError(f"max_seq_len must be at least 2, got {max_seq_len}")
    pieces = preference_pieces(record, tokenizer, template)
    prompt = _ids(pieces.pop("prompt"))
    replies = {name: pieces_to_example(ps) for name, ps in pieces.items()}
    n_prompt, longest = len(prompt), max(len(ex["input_ids"]) for ex in replies.values())
    if n_prompt + longest > max_seq_len and truncation == "drop":
        return PreferenceEncoding(None, "dropped_too_long", n_prompt + longest)
    keep_prompt, keep_reply = fit_lengths(n_prompt, longest, max_seq_len)
    status = "ok" if n_prompt + longest <= max_seq_len else "truncated"
    pad, kept = pad_id(tokenizer), prompt[n_prompt - keep_prompt :]
    columns: dict[str, list[int]] = {}
    for name, ex in replies.items():
        seq, labels = kept + ex["input_ids"][:keep_reply], ex["labels"][:keep_reply]
        fill = max_seq_len - len(seq)
        columns[f"{name}_input_ids"] = seq + [pad] * fill
        columns[f"{name}_labels"] = [IGNORE_INDEX] * len(kept) + labels + [IGNORE_INDEX] * fill
        columns[f"{name}_attention_mask"] = [1] * len(seq) + [0] * fill
    if record.label is not None:
        columns["kto_label"] = [int(record.label)]
    return PreferenceEncoding(columns, status, n_prompt + longest)


def encode_preference(
    record: PreferenceRecord, tokenizer: object, *, template: str, max_seq_len: int, truncation: str
) -> dict[str, list[int]] | None:
    """The record's columns, each padded on the right to exactly ``max_seq_len``, or None if dropped.

    Paired: ``PAIRED_COLUMNS``; unpaired (KTO): ``completion_*`` plus ``kto_label`` (``[1]``
    desirable, ``[0]`` undesirable). Labels are -100 everywhere but the reply's trained tokens; the
    attention mask is 1 on real tokens and 0 on padding (pad id: the tokenizer's pad, else EOS).
    """
    return encode_preference_result(
        record, tokenizer, template=template, max_seq_len=max_seq_len, truncation=truncation
    ).columns
