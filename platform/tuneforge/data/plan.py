"""The driver-side data plan: stream every input once, dedup, split, and fix the mixing factors.

The driver reads every file anyway (bad input must fail before any cluster work), but it never holds
the corpus: each file is streamed record by record (``readers.RecordStream``) and only a 16-byte
digest of each record's content hash is kept, in a set for exact dedup (plus, with
``near_dedup``, one MinHash per record). A record whose content was already seen (earlier in the
same file, in an earlier file, or in an eval file) is dropped, and its ``(split, source, ordinal)``
key goes into ``DataPlan.drop``. That set (usually small) ships to the Ray Data tasks, which re-parse
the files with the same pure functions and skip those keys; no shuffle or ``groupby`` is needed, and
the first occurrence always wins. The same pass counts per-source records, skipped bad records,
duplicates, the train/eval split and the exact size of the weighted train mix, and hashes every
input file (sha256) so the run can log precisely what it trained on.

That digest is the file's one identity for the rest of the run: the tokenized-data cache key, the
logged per-source stats and the registered version's lineage all take ``SourcePlan.sha256``; none
reads the file again. Driver-side consumers that need the records themselves ride on the same pass
as ``visitors`` (``RecordVisitor``: each kept record with its split side), so a run reads each input
file once on the driver: ``TextSample`` collects the texts a tiny model's tokenizer is trained on,
``data.holdout.HoldoutWriter`` streams the held-out split to its file.

Memory on the driver is O(records) small digests, not O(corpus bytes): about 100 bytes per record
(10M records ~ 1 GB), and one file's bytes at a time.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tuneforge.data.errors import DataError
from tuneforge.data.files import sha256_hex
from tuneforge.data.formats import FormatSpec
from tuneforge.data.ir import Conversation
from tuneforge.data.mixing import mix_factors, repeat_count
from tuneforge.data.readers import ProblemLog, RecordStream, open_source
from tuneforge.data.split import is_eval_hash
from tuneforge.data.templates import render_text


class SourceSpec(Protocol):
    """What the plan needs of a ``config.DatasetSpec`` (data/ does not import config).

    Read-only members, so a spec whose ``format`` is a ``Literal`` of names still matches.
    """

    @property
    def path(self) -> str: ...
    @property
    def format(self) -> str: ...
    @property
    def weight(self) -> float | None: ...
    @property
    def name(self) -> str | None: ...


class RecordVisitor(Protocol):
    """Sees every kept (deduplicated) record of the plan's pass, in pass order (eval files first).

    ``side`` is the split the record feeds ("train"/"eval"); ``split``/``index`` name its source.
    """

    def visit(self, split: str, index: int, conv: Conversation, side: str) -> None: ...


@dataclass
class SourcePlan:
    """One input file's numbers; ``to_dict`` is what the run logs."""

    split: str  # "train" (train_files) or "eval" (eval_files)
    index: int
    source: str
    path: str
    format: str
    sha256: str
    weight: float | None
    #: what the file was parsed with ("auto", a format name, or a catalog FormatSpec)
    fmt_arg: str | FormatSpec = "auto"
    on_bad: str = "error"
    records: int = 0
    skipped: int = 0
    duplicates: int = 0
    near_duplicates: int = 0
    train_records: int = 0
    eval_records: int = 0
    factor: float = 1.0
    mixed_records: int = 0
    share: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["fmt_arg"] = asdict(self.fmt_arg) if isinstance(self.fmt_arg, FormatSpec) else self.fmt_arg
        return out

    def stream(self) -> RecordStream:
        """Re-open the file: yields exactly the records the plan counted (same bytes, same format)."""
        fmt = "auto" if isinstance(self.fmt_arg, FormatSpec) else self.fmt_arg  # catalog entry: re-resolved
        stream, _, _ = open_source(self.source, fmt, on_bad=self.on_bad)
        return stream


@dataclass
class DataPlan:
    """Everything the Ray pipeline needs to reproduce the driver's decisions, plus the statistics."""

    sources: list[SourcePlan]
    drop: set[tuple[str, int, int]] = field(default_factory=set)
    problems: ProblemLog = field(default_factory=ProblemLog)
    #: the held-out split file written during the pass (``data.holdout.HoldoutWriter``), if any
    holdout: Path | None = None

    def source(self, split: str, index: int) -> SourcePlan:
        return next(s for s in self.sources if s.split == split and s.index == index)

    def iter_conversations(self, split: str, index: int) -> Iterator[Conversation]:
        """The kept (deduplicated) records of one source, in file order, streamed from the file."""
        for ordinal, conv in enumerate(self.source(split, index).stream()):
            if (split, index, ordinal) not in self.drop:
                yield conv

    def sample_texts(self, template: str, limit: int = 20_000) -> list[str]:
        """Up to ``limit`` rendered records, every source in order: what a tiny model's BPE is trained
        on (a run and ``data preview --config`` both call this, so their tokenizers are the same)."""
        texts: list[str] = []
        for sp in self.sources:
            for conv in self.iter_conversations(sp.split, sp.index):
                if len(texts) >= limit:
                    return texts
                texts.append(render_text(conv, template))
        return texts

    def conversations(self, split: str, index: int) -> list[Conversation]:
        """``iter_conversations`` as a list (small inputs and tests)."""
        return list(self.iter_conversations(split, index))

    def summary(self) -> dict[str, Any]:
        """The JSON the run logs as an artifact: per-source numbers and the skipped-record report."""
        return {"sources": [s.to_dict() for s in self.sources], "problems": self.problems.to_dict()}


class TextSample:
    """A plan visitor keeping the texts ``DataPlan.sample_texts`` returns, without a second read.

    ``sample_texts`` takes every kept record of the train files, then of the eval files, up to
    ``limit``; the pass streams eval files first, so each group is kept (up to ``limit``) apart and
    ``texts`` joins them in that order.
    """

    def __init__(self, template: str, limit: int = 20_000) -> None:
        self.template, self.limit = template, limit
        self._texts: dict[str, list[str]] = {"train": [], "eval": []}

    def visit(self, split: str, index: int, conv: Conversation, side: str) -> None:
        if len(self._texts[split]) < self.limit:
            self._texts[split].append(render_text(conv, self.template))

    def texts(self) -> list[str]:
        return (self._texts["train"] + self._texts["eval"])[: self.limit]


def plan_stats(plan: DataPlan) -> dict[str, Any]:
    """Per-source and whole-input numbers for MLflow params (sha256, format, counts, mix share)."""
    sources = {
        f"{sp.split}{sp.index}": {
            "path": sp.source, "format": sp.format, "sha256": sp.sha256, "records": sp.records,
            "duplicates": sp.duplicates, "near_duplicates": sp.near_duplicates, "skipped": sp.skipped,
            "weight": sp.weight,
            "share": round(sp.share, 6), "mixed_records": sp.mixed_records,
        }
        for sp in plan.sources
    }  # fmt: skip
    return {
        "duplicates_removed": sum(sp.duplicates for sp in plan.sources),
        "near_duplicates_removed": sum(sp.near_duplicates for sp in plan.sources),
        "skipped_records": plan.problems.total,
        "sources": sources,
    }


def keep_record(
    conv: Conversation, split: str, eval_fraction: float, seed: int, has_eval_files: bool
) -> str | None:
    """Which split a kept record of a ``train_files`` source feeds ("train"/"eval"), by content hash."""
    return side_of(conv.content_hash(), split, eval_fraction, seed, has_eval_files)


def side_of(content_hash: str, split: str, eval_fraction: float, seed: int, has_eval_files: bool) -> str:
    """``keep_record`` from a content hash alone (what the plan keeps of each record)."""
    if split == "eval" or has_eval_files:
        return split
    return "eval" if is_eval_hash(content_hash, eval_fraction, seed) else "train"


def plan_data(
    train_files: Sequence[SourceSpec],
    eval_files: Sequence[SourceSpec],
    *,
    eval_fraction: float,
    seed: int,
    dedup: bool = True,
    on_bad: str = "error",
    near_dedup: float | None = None,
    visitors: Sequence[RecordVisitor] = (),
) -> DataPlan:
    """Stream, dedup (eval files first, so a train copy of an eval record is the one dropped), split, mix.

    ``near_dedup`` (a Jaccard threshold such as 0.85) also drops records whose word 5-grams
    overlap an earlier record's that much (MinHash LSH); exact dedup must be on for it. Each kept
    record is shown to every one of ``visitors`` with the side it feeds.
    """
    plan = DataPlan(sources=[])
    seen: set[bytes] = set()
    near = None
    if dedup and near_dedup:
        from tuneforge.data.near_dedup import NearDuplicateIndex  # datasketch: imported only when asked

        near = NearDuplicateIndex(threshold=near_dedup)
    ordered = [("eval", i, s) for i, s in enumerate(eval_files)] + [
        ("train", i, s) for i, s in enumerate(train_files)
    ]
    by_key: dict[tuple[str, int], SourcePlan] = {}
    train_hashes: dict[int, list[str]] = {}
    has_eval = bool(eval_files)
    for split, index, spec in ordered:
        stream, display, fmt_arg = open_source(
            spec.path, spec.format, getattr(spec, "name", None), on_bad=on_bad
        )
        sp = SourcePlan(split, index, display, stream.source, "unknown", "", spec.weight, fmt_arg, on_bad)
        kept: list[str] = []
        for ordinal, conv in enumerate(stream):
            sp.records += 1
            digest = conv.content_hash()
            key = bytes.fromhex(digest)[:16]
            if dedup and key in seen:
                plan.drop.add((split, index, ordinal))
                sp.duplicates += 1
                continue
            if near is not None and near.seen_or_add(f"{split}:{index}:{ordinal}", conv) is not None:
                plan.drop.add((split, index, ordinal))
                sp.near_duplicates += 1
                continue
            seen.add(key)
            side = side_of(digest, split, eval_fraction, seed, has_eval)
            if side == "train":
                sp.train_records += 1
                kept.append(digest)
            else:
                sp.eval_records += 1
            for visitor in visitors:
                visitor.visit(split, index, conv, side)
        sp.format, sp.sha256, sp.skipped = stream.format, sha256_hex(stream.data), stream.problems.total
        plan.problems.merge(stream.problems)
        if sp.records == 0:
            raise DataError(
                f"no usable records: all {sp.skipped} were skipped as bad (first: "
                f"{stream.problems.errors[0] if stream.problems.errors else 'none'})",
                display,
                kind="empty_file",
            )
        if split == "train":
            train_hashes[index] = kept
        by_key[(split, index)] = sp
    train_sources = [by_key[("train", i)] for i in range(len(train_files))]
    factors = mix_factors([s.train_records for s in train_sources], [s.weight for s in train_sources])
    for sp, factor in zip(train_sources, factors, strict=True):
        sp.factor = factor
        sp.mixed_records = sum(repeat_count(h, sp.index, factor, seed) for h in train_hashes[sp.index])
    total = sum(s.mixed_records for s in train_sources) or 1
    for sp in train_sources:
        sp.share = sp.mixed_records / total
    plan.sources = train_sources + [by_key[("eval", i)] for i in range(len(eval_files))]
    return plan
