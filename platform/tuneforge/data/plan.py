"""The driver-side data plan: parse every input once, dedup, split, and fix the mixing factors.

The driver parses every file anyway (bad input must fail before any cluster work), so exact-
duplicate removal happens here: a record whose content hash was already seen (earlier in the same
file, in an earlier file, or in an eval file) is dropped, and its ``(split, source, ordinal)`` key
goes into ``DataPlan.drop``. That set (usually small) ships to the Ray Data tasks, which re-parse
the files with the same pure functions and skip those keys; no shuffle or ``groupby`` is needed, and
the first occurrence always wins. The same pass counts per-source records, skipped bad records,
duplicates, the train/eval split and the exact size of the weighted train mix, and hashes every
input file (sha256) so the run can log precisely what it trained on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from tuneforge.data.errors import DataError
from tuneforge.data.ir import Conversation
from tuneforge.data.mixing import mix_factors, repeat_count
from tuneforge.data.readers import ParsedFile, ProblemLog, read_source
from tuneforge.data.split import is_eval


class SourceSpec(Protocol):
    """What the plan needs of a ``config.DatasetSpec`` (data/ does not import config)."""

    path: str
    format: str
    weight: float | None
    name: str | None


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
    records: int = 0
    skipped: int = 0
    duplicates: int = 0
    train_records: int = 0
    eval_records: int = 0
    factor: float = 1.0
    mixed_records: int = 0
    share: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DataPlan:
    """Everything the Ray pipeline needs to reproduce the driver's decisions, plus the statistics."""

    sources: list[SourcePlan]
    drop: set[tuple[str, int, int]] = field(default_factory=set)
    problems: ProblemLog = field(default_factory=ProblemLog)
    parsed: dict[tuple[str, int], ParsedFile] = field(default_factory=dict, repr=False)

    def conversations(self, split: str, index: int) -> list[Conversation]:
        """The kept (deduplicated) records of one source, in file order."""
        convs = self.parsed[(split, index)].conversations
        return [c for i, c in enumerate(convs) if (split, index, i) not in self.drop]

    def summary(self) -> dict[str, Any]:
        """The JSON the run logs as an artifact: per-source numbers and the skipped-record report."""
        return {"sources": [s.to_dict() for s in self.sources], "problems": self.problems.to_dict()}


def keep_record(
    conv: Conversation, split: str, eval_fraction: float, seed: int, has_eval_files: bool
) -> str | None:
    """Which split a kept record of a ``train_files`` source feeds ("train"/"eval"), by content hash."""
    if split == "eval" or has_eval_files:
        return split
    return "eval" if is_eval(conv, eval_fraction, seed) else "train"


def plan_data(
    train_files: list[SourceSpec],
    eval_files: list[SourceSpec],
    *,
    eval_fraction: float,
    seed: int,
    dedup: bool = True,
    on_bad: str = "error",
) -> DataPlan:
    """Parse, dedup (eval files first, so a train copy of an eval record is the one dropped), split, mix."""
    plan = DataPlan(sources=[])
    seen: set[str] = set()
    ordered = [("eval", i, s) for i, s in enumerate(eval_files)] + [
        ("train", i, s) for i, s in enumerate(train_files)
    ]
    by_key: dict[tuple[str, int], SourcePlan] = {}
    for split, index, spec in ordered:
        parsed = read_source(spec.path, spec.format, getattr(spec, "name", None), on_bad=on_bad)
        plan.parsed[(split, index)] = parsed
        plan.problems.merge(parsed.problems)
        sp = SourcePlan(split, index, parsed.source, parsed.path, parsed.format, parsed.sha256, spec.weight)
        sp.records, sp.skipped = len(parsed.conversations), parsed.problems.total
        if not parsed.conversations:
            raise DataError(
                f"no usable records: all {sp.skipped} were skipped as bad (first: "
                f"{parsed.problems.errors[0] if parsed.problems.errors else 'none'})",
                parsed.source,
                kind="empty_file",
            )
        for ordinal, conv in enumerate(parsed.conversations):
            digest = conv.content_hash()
            if dedup and digest in seen:
                plan.drop.add((split, index, ordinal))
                sp.duplicates += 1
                continue
            seen.add(digest)
            side = keep_record(conv, split, eval_fraction, seed, bool(eval_files))
            if side == "train":
                sp.train_records += 1
            else:
                sp.eval_records += 1
        by_key[(split, index)] = sp
    train_sources = [by_key[("train", i)] for i in range(len(train_files))]
    factors = mix_factors([s.train_records for s in train_sources], [s.weight for s in train_sources])
    for sp, factor in zip(train_sources, factors, strict=True):
        sp.factor = factor
        sp.mixed_records = sum(
            repeat_count(c.content_hash(), sp.index, factor, seed)
            for c in plan.conversations("train", sp.index)
            if keep_record(c, "train", eval_fraction, seed, bool(eval_files)) == "train"
        )
    total = sum(s.mixed_records for s in train_sources) or 1
    for sp in train_sources:
        sp.share = sp.mixed_records / total
    plan.sources = train_sources + [by_key[("eval", i)] for i in range(len(eval_files))]
    return plan
