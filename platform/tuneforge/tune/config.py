"""The ``search:`` section of a sweep YAML, and ``load_sweep`` for a job file that carries one.

A sweep file is a normal job (``model``, ``data``, ``method``, ...; the base every trial starts from)
plus ``search:``. Its problems are reported like job problems, one line each:
``sweeps/my.yaml:41: search.space.trainer.lrr: unknown key; did you mean 'trainer.lr'?``.
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from tuneforge.config import ConfigError, JobConfig

# The job loader's building blocks and its error explainer, so that sweep errors read like job errors.
from tuneforge.config.errors import KeyPath, config_error, line_of
from tuneforge.config.loader import apply_override, parse_value, read_yaml, resolve_paths, validate
from tuneforge.tune.space import parse_space
from tuneforge.tune.space_types import Locator, Searcher, SearchSpace

SEARCH_KEY = "search"
_SPACE_PREFIX = f"{SEARCH_KEY}.space."


class _Strict(BaseModel):
    """Base of the search sections: unknown keys are errors, and a validated section is read-only."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class AshaSchedulerConfig(_Strict):
    """Asynchronous successive halving: stop the worse trials at each rung; budget goes to good ones."""

    name: Literal["asha"] = Field("asha", description="Scheduler selector.")
    time_attr: str = Field(
        "training_iteration",
        description="Progress measure of a rung; training_iteration counts the trial's ray.train.report "
        "calls (one per evaluation when checkpoint_every = eval_every).",
    )
    grace_period: int = Field(1, ge=1, description="Reports every trial gets before it can be stopped.")
    reduction_factor: float = Field(2, gt=1, description="Keep the best 1/reduction_factor at each rung.")
    max_t: int | None = Field(
        None,
        ge=1,
        description="Reports of a full trial; null = derived from the job (evaluations_per_trial).",
    )
    brackets: int = Field(1, ge=1, description="Number of ASHA brackets (1 is the usual choice).")

    @model_validator(mode="after")
    def _grace_within_budget(self) -> Self:
        if self.max_t is not None and self.grace_period > self.max_t:
            raise ValueError(f"grace_period ({self.grace_period}) exceeds max_t ({self.max_t})")
        return self


class FifoSchedulerConfig(_Strict):
    """Run every trial to the end (no early stopping)."""

    name: Literal["fifo"] = Field("fifo", description="Scheduler selector.")


SchedulerConfig = Annotated[AshaSchedulerConfig | FifoSchedulerConfig, Field(discriminator="name")]


class SweepConfig(_Strict):
    """How to search: objective, budget, scheduler, searcher and the ``space`` of job keys."""

    metric: str = Field("eval_loss", description="Reported metric that ranks trials.")
    direction: Literal["min", "max"] = Field(
        "min", description="Whether lower (min) or higher (max) is better."
    )
    num_samples: int = Field(
        8, ge=1, description="Trials to sample (with grid domains: samples per grid point, as in Tune)."
    )
    scheduler: SchedulerConfig = Field(
        default_factory=FifoSchedulerConfig, description="Trial scheduler: asha (early stopping) or fifo."
    )
    searcher: Searcher = Field(
        "random",
        description="random / grid (Tune's BasicVariantGenerator; grid turns every choice into a grid), "
        "optuna or hyperopt (need their packages; no grid domains).",
    )
    seed: int | None = Field(None, description="Seed of the searcher; null = the job's trainer.seed.")
    max_concurrent_trials: int | None = Field(
        None, ge=1, description="Trials running at once; null = as many as the cluster's CPUs allow."
    )
    time_budget_s: float | None = Field(None, gt=0, description="Stop the sweep after this many seconds.")
    max_total_tokens: int | None = Field(
        None, ge=1, description="Stop starting trials once all trials together trained on this many tokens."
    )
    space: dict[str, Any] = Field(description="Job keys -> values or domains; see tuneforge.tune.space.")

    _parsed: SearchSpace | None = PrivateAttr(None)

    @model_validator(mode="before")
    @classmethod
    def _scheduler_shorthand(cls, data: Any) -> Any:
        """Let ``scheduler: asha`` stand for ``scheduler: {name: asha}``, and ``max_trials`` for
        ``num_samples`` (the budget's name for the same number: at most this many trials run)."""
        if isinstance(data, dict) and isinstance(data.get("scheduler"), str):
            data = {**data, "scheduler": {"name": data["scheduler"]}}
        if isinstance(data, dict) and "max_trials" in data:
            if "num_samples" in data:
                raise ValueError("max_trials and num_samples are the same number; give one of them")
            data = {k: v for k, v in data.items() if k != "max_trials"} | {"num_samples": data["max_trials"]}
        return data

    def search_space(self, job: JobConfig | None = None) -> SearchSpace:
        """The parsed space (checked against ``job`` when given); ``load_sweep`` has already parsed it."""
        if self._parsed is None or job is not None:
            self._parsed = parse_space(self.space, job=job, searcher=self.searcher)
        return self._parsed


def load_sweep(path: str | Path, overrides: Sequence[str] = ()) -> tuple[JobConfig, SweepConfig]:
    """Read a sweep YAML: the base job (validated, local paths made absolute) and its checked search.

    Overrides work as for jobs: ``trainer.max_steps=10`` sets the base job, ``search.num_samples=4`` the
    search, and ``search.space.trainer.lr={choice: [1e-3, 3e-3]}`` replaces one key of the space.
    """
    config_path = Path(path)
    raw, lines = read_yaml(config_path)
    space_overrides: list[tuple[str, Any]] = []
    overridden: list[KeyPath] = []
    for text in overrides:
        key = text.partition("=")[0].strip()
        if key.startswith(_SPACE_PREFIX) and "=" in text:
            space_overrides.append((key[len(_SPACE_PREFIX) :], parse_value(key, text.partition("=")[2])))
        else:
            overridden.append(apply_override(raw, text))
    search_raw = _take_search(raw, str(path), lines)
    job = validate(raw, source=str(path), lines=lines, overridden=overridden)
    job = resolve_paths(job, config_path.parent)

    space_paths: set[KeyPath] = {p for p in overridden if p[:2] == (SEARCH_KEY, "space")}  # `search.space=`
    if space_overrides:
        space = search_raw.setdefault("space", {})
        if not isinstance(space, dict):
            where = line_of((SEARCH_KEY, "space"), lines)
            raise ConfigError("expected a mapping of keys", file=str(path), line=where, field="search.space")
        for key, value in space_overrides:
            space[key] = value
            space_paths.add((SEARCH_KEY, "space", key))
    sweep = _validate_sweep(search_raw, str(path), lines, [p for p in overridden if p[:1] == (SEARCH_KEY,)])
    locator = Locator(file=str(path), lines=lines, overridden=frozenset(space_paths))
    sweep._parsed = parse_space(sweep.space, job=job, searcher=sweep.searcher, locator=locator)
    return job, sweep


def evaluations_per_trial(job: JobConfig) -> int | None:
    """Reports a full trial makes when it reports at every evaluation: the ASHA ``max_t`` default.

    One per ``eval_every`` steps before the end, plus the final one; None when the step count is only
    known after tokenization (``max_steps`` null) or the job does not evaluate during training.
    """
    steps, every = job.trainer.max_steps, job.trainer.eval_every
    if steps is None:
        return None
    return (steps - 1) // every + 1 if every else 1


def _take_search(raw: dict[str, Any], file: str, lines: dict[KeyPath, int]) -> dict[str, Any]:
    """Remove and return the ``search`` section; a missing one is usually a typo of its key."""
    if SEARCH_KEY not in raw:
        strays = [k for k in raw if k not in JobConfig.model_fields]
        close = difflib.get_close_matches(SEARCH_KEY, [str(k) for k in strays], n=1)
        if close:
            return_line = line_of((close[0],), lines)
            raise ConfigError(
                f"unknown key; did you mean {SEARCH_KEY!r}?", file=file, line=return_line, field=close[0]
            )
        raise ConfigError(
            f"no '{SEARCH_KEY}:' section; a sweep file is a job plus search: (one job: `tuneforge train`)",
            file=file,
        )
    search = raw.pop(SEARCH_KEY)
    if not isinstance(search, dict):
        raise ConfigError(
            "expected a mapping of keys", file=file, line=line_of((SEARCH_KEY,), lines), field=SEARCH_KEY
        )
    return search


def _validate_sweep(
    raw: dict[str, Any], file: str, lines: dict[KeyPath, int], overridden: list[KeyPath]
) -> SweepConfig:
    """Validate ``search:``; the first problem becomes a ConfigError at its line (or the override)."""
    try:
        return SweepConfig.model_validate(raw)
    except ValidationError as exc:
        raise config_error(
            exc, SweepConfig, source=file, lines=lines, overridden=overridden, prefix=(SEARCH_KEY,)
        ) from None


def sweep_name(config: str | Path, name: str | None, resume: bool) -> str:
    """The sweep's name: ``name``, else the file's stem plus the time (``--resume`` needs the name)."""
    if resume and not name:
        raise ValueError("--resume needs --name: the name of the sweep to continue")
    return name or f"{Path(config).stem}-{time.strftime('%Y%m%d-%H%M%S')}"


__all__ = [
    "AshaSchedulerConfig",
    "FifoSchedulerConfig",
    "SchedulerConfig",
    "SweepConfig",
    "evaluations_per_trial",
    "load_sweep",
    "sweep_name",
]
