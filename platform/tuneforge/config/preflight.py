"""Checks on a job's output directory, made before a run writes anything into it.

A run directory holds ``job.yaml`` (written by the runner) next to its checkpoints, base model and
Ray storage. Reusing the directory of a *different* run would mix two runs' files (and the registry
would point at whichever checkpoint happened to be last), so it is refused unless ``--overwrite``.
The same config may reuse its own directory: a rerun of an identical job is harmless.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml

from tuneforge.config.errors import ConfigError
from tuneforge.config.loader import config_from_dict, config_hash, save_config
from tuneforge.config.schema import JobConfig

RUN_CONFIG = "job.yaml"
OVERWRITE_HINT = "choose another trainer.output_dir, or pass --overwrite to replace it"


def saved_form(job: JobConfig) -> dict[str, Any]:
    """The config as ``save_config`` writes it (secrets masked), read back: comparable with a job.yaml."""
    with tempfile.TemporaryDirectory(prefix="tuneforge-cfg-") as tmp:
        path = Path(tmp) / RUN_CONFIG
        save_config(job, path)
        data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
        return data


def _hash_of(data: object) -> str | None:
    """``config_hash`` of a saved config, or None when it is no (longer a) valid job config."""
    if not isinstance(data, dict):
        return None
    try:
        return config_hash(config_from_dict(data))
    except ConfigError:
        return None


def check_output_dir(job: JobConfig, run_dir: Path, overwrite: bool = False) -> None:
    """Refuse a ``run_dir`` that holds another run (a different config hash) or unrelated files.

    Passes for a missing or empty directory, for a run of the same config, and with ``overwrite``.
    """
    if overwrite or not run_dir.exists():
        return
    if not run_dir.is_dir():
        raise ConfigError(f"'{run_dir}' is a file, not a directory", field="trainer.output_dir")
    saved = run_dir / RUN_CONFIG
    if not saved.is_file():
        if any(run_dir.iterdir()):
            raise ConfigError(
                f"'{run_dir}' is not empty and holds no tuneforge run (no {RUN_CONFIG}); "
                "choose an empty or new trainer.output_dir, or pass --overwrite to write into it anyway",
                field="trainer.output_dir",
            )
        return
    try:
        theirs = _hash_of(yaml.safe_load(saved.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        theirs = None
    ours = _hash_of(saved_form(job))
    if theirs is None or theirs != ours:
        what = f"config hash {theirs}" if theirs else f"a {RUN_CONFIG} this version cannot read"
        raise ConfigError(
            f"'{run_dir}' holds a different run ({what}; this job's is {ours}); {OVERWRITE_HINT}",
            field="trainer.output_dir",
        )


__all__ = ["RUN_CONFIG", "check_output_dir", "saved_form"]
