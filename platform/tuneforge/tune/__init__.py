"""tuneforge.tune: strategy search over fine-tuning jobs (which method, which knobs, which data mix).

A sweep YAML is a normal job plus a ``search:`` section. ``load_sweep`` turns it into the base
``JobConfig`` and a ``SweepConfig`` whose ``space`` has been checked against the job schema;
``tuneforge.tune.domains`` (the only module here that imports Ray) builds the Tune param space,
scheduler and search algorithm; each trial's sampled config goes through ``resolve_trial_config``
and ``apply_overrides`` back to a validated ``JobConfig``; ``pareto`` ranks finished trials by quality
against cost. Nothing in this package's top level imports Ray, so configs can be checked without it.
"""

from tuneforge.tune.config import (
    AshaSchedulerConfig,
    FifoSchedulerConfig,
    SweepConfig,
    evaluations_per_trial,
    load_sweep,
)
from tuneforge.tune.mix import resolve_mix
from tuneforge.tune.pareto import (
    COST_FIELDS,
    dominates,
    pareto_front,
    render_pareto_table,
    save_pareto_plot,
)
from tuneforge.tune.space import parse_space
from tuneforge.tune.space_schema import searchable_keys
from tuneforge.tune.space_types import DOMAIN_KINDS, REST, Domain, MethodBranch, SearchSpace
from tuneforge.tune.trial import apply_overrides, resolve_trial_config

__all__ = [
    "COST_FIELDS",
    "DOMAIN_KINDS",
    "REST",
    "AshaSchedulerConfig",
    "Domain",
    "FifoSchedulerConfig",
    "MethodBranch",
    "SearchSpace",
    "SweepConfig",
    "apply_overrides",
    "dominates",
    "evaluations_per_trial",
    "load_sweep",
    "pareto_front",
    "parse_space",
    "render_pareto_table",
    "resolve_mix",
    "resolve_trial_config",
    "save_pareto_plot",
    "searchable_keys",
]
