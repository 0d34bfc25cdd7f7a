"""``tuneforge train CONFIG --resume RUN_DIR|CHECKPOINT``: what a resumed run continues, and with what.

A run directory records the run it holds (``run.json``: MLflow run id, Ray run name, status) next to
its resolved config (``job.yaml``). Resuming reopens that MLflow run, reruns Ray Train under the same
name and storage path (the workers pick the newest complete checkpoint there), and refuses a config
that changed anything but the worker count, the CPUs per worker, the failure budget or the step
budget. A changed worker count keeps the global batch: ``grad_accum`` is rescaled so that workers x
grad_accum stays what it was, and the optimizer and data position carry over unchanged (ZeRO-0
state loads as it is; ZeRO-1/2/3 partitions, which are per rank, go through DeepSpeed's universal
checkpoint: training/universal.py).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from tuneforge.config import JobConfig, config_from_dict
from tuneforge.training.trainer_state import STATE_FILE

RUN_RECORD = "run.json"
CONFIG_FILE = "job.yaml"
# What may differ between a run and its resumption (everything else changes what is trained).
RESUMABLE_CHANGES = (
    "distributed.num_workers",
    "distributed.cpus_per_worker",
    "distributed.threads_per_worker",
    "distributed.max_failures",
    "trainer.max_steps",
    "trainer.grad_accum",  # only as the rescale for a new worker count; checked below
)


class TrainingFailed(RuntimeError):
    """Training stopped for good (restarts used up, or none allowed); the run can be resumed."""


@dataclass
class RunRecord:
    """What a run directory holds: enough to reopen its MLflow run and its Ray storage."""

    run_id: str
    name: str
    experiment: str
    status: str = "RUNNING"
    resumes: int = 0

    def write(self, run_dir: Path) -> None:
        tmp = run_dir / f".{RUN_RECORD}.tmp"
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        tmp.replace(run_dir / RUN_RECORD)

    @classmethod
    def read(cls, run_dir: Path) -> RunRecord:
        return cls(**json.loads((run_dir / RUN_RECORD).read_text()))


@dataclass
class ResumeTarget:
    """A run to continue: its directory and record, and an explicit checkpoint if one was named."""

    run_dir: Path
    record: RunRecord
    checkpoint: Path | None = None


def find_run(path: str | Path) -> ResumeTarget:
    """Resolve ``--resume PATH``: a run directory, or a checkpoint inside one (on its storage)."""
    p = Path(path).expanduser().resolve()
    if not p.exists():
        raise FileNotFoundError(f"--resume {path}: no such run directory or checkpoint")
    checkpoint = p if (p / STATE_FILE).is_file() else None
    for d in (p, *p.parents):
        if (d / RUN_RECORD).is_file():
            return ResumeTarget(d, RunRecord.read(d), checkpoint)
    raise ValueError(
        f"--resume {path}: not a tuneforge run directory (no {RUN_RECORD} in it or above it); "
        "pass the run directory printed by `tuneforge train` (its `run` line)"
    )


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: obj}


def config_changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Dotted key -> (before, after) for every leaf that differs."""
    a, b = _flatten(before), _flatten(after)
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


def resumed_job(target: ResumeTarget, job: JobConfig, redact: Any) -> JobConfig:
    """The job to run when resuming ``target`` with ``job``; refuses changes that alter training.

    ``redact`` maps a config dict to what was written into ``job.yaml`` (secrets masked), so the
    comparison is between like and like. The returned job writes into the same run directory
    under the same run name, with ``grad_accum`` rescaled for a new worker count.
    """
    if target.record.status == "FINISHED":
        raise ValueError(
            f"--resume {target.run_dir}: that run finished (nothing to resume); "
            "start a new run from its registered model instead"
        )
    saved = yaml.safe_load((target.run_dir / CONFIG_FILE).read_text())
    before = config_from_dict(saved)
    trainer_update: dict[str, Any] = {"output_dir": str(target.run_dir)}
    old_global = before.distributed.num_workers * before.trainer.grad_accum
    if job.distributed.num_workers != before.distributed.num_workers:
        if old_global % job.distributed.num_workers:
            raise ValueError(
                f"--resume: the run trained with {before.distributed.num_workers} workers x grad_accum "
                f"{before.trainer.grad_accum} = {old_global} micro-batches per step, which "
                f"{job.distributed.num_workers} workers cannot split evenly; choose a divisor of {old_global}"
            )
        trainer_update["grad_accum"] = old_global // job.distributed.num_workers
    new = job.model_copy(
        update={
            "trainer": job.trainer.model_copy(update=trainer_update),
            "tracking": job.tracking.model_copy(update={"run_name": target.record.name}),
        }
    )
    changes = config_changes(redact(saved), redact(new.model_dump(mode="json")))
    ours = (*RESUMABLE_CHANGES, "trainer.output_dir", "tracking.run_name")  # set above, to the run's own
    refused = {k: v for k, v in changes.items() if k not in ours}
    if new.distributed.num_workers * new.trainer.grad_accum != old_global:
        refused["trainer.grad_accum"] = (before.trainer.grad_accum, new.trainer.grad_accum)
    if refused:
        diff = "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in refused.items())
        raise ValueError(
            f"--resume {target.run_dir}: the config differs from the run's {CONFIG_FILE} in what it trains "
            f"({diff}); only {', '.join(RESUMABLE_CHANGES[:4])} may change"
        )
    return new
