"""Ray Tune objects for a sweep: param space, scheduler and search algorithm. The only Ray code in tune/.

Building these objects needs Ray installed but no running cluster, so they are unit-tested directly.
"""

from __future__ import annotations

from typing import Any

from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler
from ray.tune.search import BasicVariantGenerator, ConcurrencyLimiter, Searcher

from tuneforge.config import ConfigError, JobConfig
from tuneforge.tune.config import SweepConfig, evaluations_per_trial
from tuneforge.tune.space_types import Domain
from tuneforge.tune.space_types import Searcher as SearcherName


def to_tune(value: Any, searcher: SearcherName = "random") -> Any:
    """One layout value -> its Tune domain (constants and containers of constants pass through).

    ``randint`` gets ``hi + 1`` because the YAML bound is inclusive and Tune's is not; with
    ``searcher: grid`` every ``choice`` becomes a ``grid_search``.
    """
    if isinstance(value, dict):
        return {key: to_tune(item, searcher) for key, item in value.items()}
    if not isinstance(value, Domain):
        return value
    args = value.args
    if value.kind == "choice":
        return tune.grid_search(list(args)) if searcher == "grid" else tune.choice(list(args))
    if value.kind == "grid":
        return tune.grid_search([to_tune(item, searcher) for item in args])
    if value.kind == "uniform":
        return tune.uniform(args[0], args[1])
    if value.kind == "loguniform":
        return tune.loguniform(args[0], args[1])
    if value.kind == "randint":
        return tune.randint(args[0], args[1] + 1)
    if value.kind == "quniform":
        return tune.quniform(args[0], args[1], args[2])
    raise ValueError(f"unknown domain kind {value.kind!r}")


def build_param_space(sweep: SweepConfig, job: JobConfig | None = None) -> dict[str, Any]:
    """The ``param_space`` for ``tune.Tuner``; each trial's config goes through ``resolve_trial_config``."""
    space = sweep.search_space(job)
    return {key: to_tune(value, space.searcher) for key, value in space.layout().items()}


def build_scheduler(sweep: SweepConfig, job: JobConfig | None = None) -> TrialScheduler:
    """ASHA or FIFO; metric and direction are left to ``TuneConfig`` so they are set in one place.

    ASHA's ``max_t`` is ``scheduler.max_t``, else the number of reports a full trial of ``job`` makes.
    """
    config = sweep.scheduler
    if config.name == "fifo":
        return FIFOScheduler()
    max_t = config.max_t or (evaluations_per_trial(job) if job is not None else None)
    if max_t is None:
        raise ConfigError(
            "asha needs max_t: set search.scheduler.max_t, or trainer.max_steps so it can be derived",
            field="search.scheduler.max_t",
        )
    return ASHAScheduler(
        time_attr=config.time_attr,
        max_t=max_t,
        grace_period=min(config.grace_period, max_t),
        reduction_factor=config.reduction_factor,
        brackets=config.brackets,
    )


def build_search_alg(sweep: SweepConfig, seed: int | None = None) -> Searcher | BasicVariantGenerator:
    """The search algorithm, with the concurrency limit applied where Tune honours it.

    ``TuneConfig(max_concurrent_trials=...)`` is silently ignored next to an explicit
    BasicVariantGenerator, so the limit goes into the generator itself (random, grid) or a
    ConcurrencyLimiter (optuna, hyperopt).
    """
    seed = sweep.seed if sweep.seed is not None else seed
    limit = sweep.max_concurrent_trials
    if sweep.searcher in ("random", "grid"):
        return BasicVariantGenerator(max_concurrent=limit or 0, random_state=seed)
    try:
        if sweep.searcher == "optuna":
            from ray.tune.search.optuna import OptunaSearch

            searcher: Searcher = OptunaSearch(seed=seed)
        else:
            from ray.tune.search.hyperopt import HyperOptSearch

            searcher = HyperOptSearch(random_state_seed=seed)
    except (ImportError, AssertionError) as exc:  # Ray asserts that the package is installed
        raise ConfigError(
            f"searcher {sweep.searcher!r} needs the {sweep.searcher} package ({exc})", field="search.searcher"
        ) from None
    return ConcurrencyLimiter(searcher, max_concurrent=limit) if limit else searcher


__all__ = ["build_param_space", "build_scheduler", "build_search_alg", "to_tune"]
