"""How a model was trained to read its data, recorded so it is scored the same way.

A model trained with the tokenizer's own chat template and scored with ChatML is scored on text it
never saw: the loss and the generations then measure the mismatch, not the model. So the run
records the *resolved* template (``auto`` becomes ``tokenizer`` or ``chatml`` for that tokenizer),
the sequence length and the loss-mask options, and every scorer -- ``tuneforge eval``, the promotion
gate, ``tuneforge generate``, the prompting baselines -- renders with exactly that. It travels as a
JSON file next to checkpoints and exports (``tuneforge_format.json``) and as the ``tuneforge.format``
tag on the MLflow run and on the registered version.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from tuneforge.data.encode import resolve_template

FORMAT_FILE = "tuneforge_format.json"
FORMAT_TAG = "tuneforge.format"
#: How many directory levels above a checkpoint are searched for the run's format file.
_SEARCH_LEVELS = 5


@dataclass(frozen=True)
class TrainedFormat:
    """The rendering and masking a model was trained with (``template`` is already resolved)."""

    template: str = "auto"
    max_seq_len: int = 512
    train_on_prompt: bool = False
    last_turn_only: bool = False
    truncation: str = "truncate"
    modes: tuple[str, ...] = ()

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "modes": list(self.modes)}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TrainedFormat:
        data = json.loads(text)
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["modes"] = tuple(known.get("modes", ()))
        return cls(**known)

    def write(self, directory: str | Path) -> Path:
        path = Path(directory) / FORMAT_FILE
        path.write_text(self.to_json() + "\n")
        return path


class _ModeEntry(Protocol):
    @property
    def mode(self) -> str: ...


class _FormatData(Protocol):
    """What ``format_from_job`` reads of ``job.data`` (``tuneforge.config.DataConfig``)."""

    @property
    def template(self) -> str: ...
    @property
    def train_on_prompt(self) -> bool: ...
    @property
    def last_turn_only(self) -> bool: ...
    @property
    def truncation(self) -> str: ...
    @property
    def modes(self) -> Sequence[_ModeEntry]: ...


class _FormatTrainer(Protocol):
    @property
    def max_seq_len(self) -> int: ...


class FormatSource(Protocol):
    """What ``format_from_job`` reads of a job: a ``tuneforge.config.JobConfig`` (data/ imports no config)."""

    @property
    def data(self) -> _FormatData: ...
    @property
    def trainer(self) -> _FormatTrainer: ...


def format_from_job(job: FormatSource, tokenizer: Any) -> TrainedFormat:
    """The format a job trains with, its template resolved against the job's real tokenizer."""
    d, t = job.data, job.trainer
    return TrainedFormat(
        template=resolve_template(d.template, tokenizer),
        max_seq_len=int(t.max_seq_len),
        train_on_prompt=bool(d.train_on_prompt),
        last_turn_only=bool(d.last_turn_only),
        truncation=str(d.truncation),
        modes=tuple(m.mode for m in d.modes),
    )


def find_format(path: str | Path) -> TrainedFormat | None:
    """The format recorded in ``path`` or the nearest directory above it (a checkpoint inside a run)."""
    here = Path(path).resolve()
    for candidate in [here, *here.parents][:_SEARCH_LEVELS]:
        f = candidate / FORMAT_FILE
        if f.is_file():
            return TrainedFormat.from_json(f.read_text())
    return None
