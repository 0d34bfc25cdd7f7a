"""The driver's plan of a preference job: every file read and checked once, deduplicated and split.

Why in memory, unlike the SFT plan's streamed pass: preference sets are small (thousands to a few
hundred thousand pairs, each a prompt and two replies) and every later stage needs the kept records
themselves (the held-out file, the Ray Data rows), so holding them once is simpler than streaming
the files three times. The split is the SFT split rule (``data.plan.side_of``: by content hash, so
it does not depend on file order); exact duplicates (same prompt, replies and label) are dropped.

KTO trains on labelled replies: a paired file used with ``objective: kto`` becomes two unpaired
records per pair (chosen desirable, rejected undesirable; ``ir.unpair``), after the split, so both
replies of a pair are on one side and the held-out file still holds the pair. The other objectives need
pairs, and an unpaired file is refused for them with the file named.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tuneforge.data.errors import DataError
from tuneforge.data.openai_format import message_record
from tuneforge.data.plan import side_of
from tuneforge.data.preference.ir import PAIRED, PreferenceRecord, unpair
from tuneforge.data.preference.readers import read_preference_file
from tuneforge.data.readers import ProblemLog


class FileSpec(Protocol):
    """What the plan needs of a ``DatasetSpec``."""

    @property
    def path(self) -> str: ...

    @property
    def format(self) -> str: ...


@dataclass
class PreferencePlan:
    """The kept records of each split, per-source numbers, and the held-out file once written."""

    train: list[PreferenceRecord]
    eval: list[PreferenceRecord]
    sources: list[dict[str, Any]]
    problems: ProblemLog = field(default_factory=ProblemLog)
    holdout: Path | None = None
    #: the held-out records as read (pairs stay pairs under KTO): what the held-out file holds
    held_out: list[PreferenceRecord] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """The JSON the run logs as an artifact (per-source numbers and skipped records)."""
        return {"sources": self.sources, "problems": self.problems.to_dict()}

    def stats(self) -> dict[str, Any]:
        """Flat numbers for MLflow params."""
        return {
            "train_records": len(self.train),
            "eval_records": len(self.eval),
            "duplicates": sum(int(s["duplicates"]) for s in self.sources),
            "skipped": self.problems.total,
        }

    def digest(self) -> str:
        """What decides the records: the files' sha256s and the kept records' hashes, in order."""
        import hashlib

        h = hashlib.sha256()
        for s in self.sources:
            h.update(f"{s['split']}|{s['path']}|{s['sha256']}|{s['format']}\n".encode())
        for name, records in (("train", self.train), ("eval", self.eval)):
            h.update(name.encode())
            for rec in records:
                h.update(rec.content_hash().encode())
        return h.hexdigest()

    def texts(self, limit: int = 20_000) -> list[str]:
        """Plain text of prompts and replies: what a tiny model's BPE tokenizer is trained on."""
        out: list[str] = []
        for rec in [*self.train, *self.eval]:
            for m in (*rec.prompt, *rec.replies):
                if len(out) >= limit:
                    return out
                out.append(m.content)
        return out


def plan_preference(
    train_files: Sequence[FileSpec],
    eval_files: Sequence[FileSpec],
    *,
    objective: str,
    eval_fraction: float,
    seed: int,
    dedup: bool = True,
    on_bad: str = "error",
    max_records: int | None = None,
) -> PreferencePlan:
    """Read every file once (bad records raise or are counted), dedup, and split by content hash."""
    problems = ProblemLog()
    seen: set[str] = set()
    split: dict[str, list[PreferenceRecord]] = {"train": [], "eval": []}
    held: list[PreferenceRecord] = []
    sources: list[dict[str, Any]] = []
    groups = (("train", train_files), ("eval", eval_files))
    for group, specs in groups:
        for spec in specs:
            parsed = read_preference_file(spec.path, on_bad=on_bad, fmt=spec.format)
            problems.merge(parsed.problems)
            records = parsed.records
            if objective != "kto" and any(r.kind != PAIRED for r in records):
                raise DataError(
                    f"{parsed.format} holds unpaired replies (KTO data); objective {objective} needs "
                    "chosen/rejected pairs",
                    file=spec.path,
                    kind="unpaired_for_pairs",
                )
            dups = 0
            for rec in records:
                key = rec.content_hash()
                if dedup and key in seen:
                    dups += 1
                    continue
                seen.add(key)
                # Split by the record as written: a pair's two KTO replies land on the same side,
                # and the held-out file keeps the pair (the gate and `eval --preference` rank pairs).
                side = side_of(key, group, eval_fraction, seed, bool(eval_files))
                split[side].extend(unpair(rec) if objective == "kto" else [rec])
                if side == "eval":
                    held.append(rec)
            sources.append(
                {"split": group, "path": spec.path, "format": parsed.format, "sha256": parsed.sha256,
                 "records": len(records), "duplicates": dups, "skipped": parsed.problems.total}
            )  # fmt: skip
    train = split["train"][:max_records] if max_records else split["train"]
    if not train:
        raise DataError(
            "no training records left after dedup and the eval split", field="data.train_files",
            kind="no_records",
        )  # fmt: skip
    return PreferencePlan(train, split["eval"], sources, problems, held_out=held)


def preference_record_json(rec: PreferenceRecord) -> dict[str, Any]:
    """TRL's explicit conversational form: ``{prompt, chosen, rejected}`` or ``{prompt, completion, label}``.

    The held-out split is written in it, so ``tuneforge eval --preference`` and the promotion gate
    read it back with the same readers (it is one of the auto-detected formats).
    """
    assert rec.chosen is not None
    out: dict[str, Any] = {"prompt": [message_record(m) for m in rec.prompt]}
    if rec.rejected is None:
        out.update(completion=[message_record(rec.chosen)], label=bool(rec.label))
    else:
        out.update(chosen=[message_record(rec.chosen)], rejected=[message_record(rec.rejected)])
    if rec.tools is not None:
        out["tools"] = [dict(t) for t in rec.tools]
    return out


def write_pairs(records: Sequence[PreferenceRecord], out: Path) -> Path:
    """Write records as JSONL atomically (a crash leaves the old file or none, never half of one)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(preference_record_json(rec), ensure_ascii=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, out)
    return out
