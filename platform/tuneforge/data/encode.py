"""One entry point from a record to training examples, whatever the template or the record's mode.

``encode_record`` resolves the template (``auto`` = the tokenizer's own chat template when it has
one, else ChatML), encodes chat records with exact loss masks, and chunks raw-text (``pretrain``)
records into ``max_seq_len`` blocks with every token trained. It reports what happened
(``status``) so the pipeline and ``tuneforge data preview`` can count truncated and dropped records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tuneforge.data.hf_template import tokenizer_pieces, tokenizer_prompt
from tuneforge.data.ir import Conversation
from tuneforge.data.templates import (
    IGNORE_INDEX,
    TRUNCATION_MODES,
    Piece,
    bos_ids,
    encode_piece,
    pieces_to_example,
    render_prompt,
    template_pieces,
)


@dataclass
class EncodeResult:
    """The examples of one record (several for a chunked pretrain text) and what happened to it."""

    examples: list[dict[str, list[int]]] = field(default_factory=list)
    status: str = "ok"
    length: int = 0  # tokens before truncation/chunking


def resolve_template(template: str, tokenizer: Any) -> str:
    """``auto`` -> ``tokenizer`` if the tokenizer carries a chat_template, else ``chatml``."""
    if template == "auto":
        return "tokenizer" if getattr(tokenizer, "chat_template", None) else "chatml"
    return template


def prompt_text(conv: Conversation, tokenizer: Any, template: str = "auto") -> str:
    """The generation prompt for ``conv`` under ``template`` resolved for ``tokenizer``.

    Scorers call this rather than ``render_prompt`` so that a model trained with its tokenizer's
    own template is asked in that template (``render_prompt`` alone knows only the named ones).
    """
    name = resolve_template(template, tokenizer)
    if name == "tokenizer":
        return tokenizer_prompt(conv, tokenizer)
    return render_prompt(conv, name)


def record_pieces(
    conv: Conversation,
    tokenizer: Any,
    template: str = "chatml",
    *,
    train_on_prompt: bool = False,
    last_turn_only: bool = False,
) -> list[Piece]:
    """The rendered, tokenized pieces of a record (what ``tuneforge data preview`` highlights).

    A pretrain record is [BOS] + text + EOS, all trained: documents must end so the model learns
    where they stop. Chat records go through the resolved template.
    """
    if conv.mode == "pretrain":
        pieces: list[Piece] = []
        bos = bos_ids(tokenizer)
        if bos:
            pieces.append((tokenizer.bos_token, bos, True, "text"))
        pieces.append((conv.text, encode_piece(tokenizer, conv.text, literal=True), True, "text"))
        if tokenizer.eos_token_id is not None:
            pieces.append((tokenizer.eos_token, [tokenizer.eos_token_id], True, "text"))
        return pieces
    name = resolve_template(template, tokenizer)
    if name == "tokenizer":
        return tokenizer_pieces(conv, tokenizer, train_on_prompt, last_turn_only)
    return template_pieces(conv, tokenizer, name, train_on_prompt, last_turn_only)


def _pretrain(conv: Conversation, tokenizer: Any, max_seq_len: int | None) -> EncodeResult:
    """Raw text chunked into ``max_seq_len`` blocks, every token trained."""
    return chunk(pieces_to_example(record_pieces(conv, tokenizer))["input_ids"], max_seq_len)


def chunk(ids: list[int], max_seq_len: int | None) -> EncodeResult:
    """Split a pretrain document into blocks; a 1-token tail is dropped (it predicts nothing)."""
    size = max_seq_len or len(ids)
    chunks = [ids[i : i + size] for i in range(0, len(ids), size)]
    examples = [{"input_ids": c, "labels": list(c)} for c in chunks if len(c) > 1]
    return EncodeResult(examples, "chunked" if len(chunks) > 1 else "ok", len(ids))


def encode_record(
    conv: Conversation,
    tokenizer: Any,
    template: str = "chatml",
    max_seq_len: int | None = None,
    *,
    train_on_prompt: bool = False,
    truncation: str = "truncate",
    last_turn_only: bool = False,
) -> EncodeResult:
    """Examples for one record. Chat records longer than ``max_seq_len`` are truncated (head kept)
    or dropped per ``truncation``; a record left with no trained token is dropped (it would add only
    padding). Pretrain records are chunked, never truncated."""
    if truncation not in TRUNCATION_MODES:
        raise ValueError(f"unknown truncation {truncation!r}; expected one of {', '.join(TRUNCATION_MODES)}")
    if conv.mode == "pretrain":
        return _pretrain(conv, tokenizer, max_seq_len)
    pieces = record_pieces(
        conv, tokenizer, template, train_on_prompt=train_on_prompt, last_turn_only=last_turn_only
    )
    return finish(pieces_to_example(pieces), max_seq_len, truncation)


def finish(enc: dict[str, list[int]], max_seq_len: int | None, truncation: str) -> EncodeResult:
    """Apply the length policy to an untruncated chat example and drop it if nothing is trained."""
    length, status = len(enc["input_ids"]), "ok"
    if max_seq_len is not None and length > max_seq_len:
        if truncation == "drop":
            return EncodeResult([], "dropped_too_long", length)
        enc = {k: v[:max_seq_len] for k, v in enc.items()}
        status = "truncated"
    if all(label == IGNORE_INDEX for label in enc["labels"]):
        return EncodeResult([], "no_trained_tokens", length)
    return EncodeResult([enc], status, length)


def encode_conversation(
    conv: Conversation,
    tokenizer: Any,
    template: str = "chatml",
    max_seq_len: int | None = None,
    train_on_prompt: bool = False,
    truncation: str = "truncate",
    last_turn_only: bool = False,
) -> dict[str, list[int]] | None:
    """Token ids and labels for one conversation, or None when it must be dropped.

    Labels are ``-100`` except on trained messages' content and end marker (``train_on_prompt``
    trains every token, markup and system/user turns included). Longer than ``max_seq_len``:
    ``truncation="truncate"`` keeps the head, ``"drop"`` returns None. A result with no trained
    token left returns None too, because it would contribute nothing but padding to a batch.
    ``template`` may also be ``auto``/``tokenizer`` (see ``encode.encode_record``, which this wraps;
    a pretrain record longer than ``max_seq_len`` yields its first block here).
    """
    result = encode_record(
        conv,
        tokenizer,
        template,
        max_seq_len,
        train_on_prompt=train_on_prompt,
        truncation=truncation,
        last_turn_only=last_turn_only,
    )
    return result.examples[0] if result.examples else None
