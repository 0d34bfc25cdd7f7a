"""``WorkerArgs``: everything the driver hands each Ray Train worker, typed and checked at the boundary.

Ray Train passes ``train_loop_config`` to every worker as a plain dict, so the driver sends
``WorkerArgs.to_config()`` (JSON-safe data) and the worker reads ``WorkerArgs.from_config(cfg)``,
which re-validates the job and refuses a missing or misspelled key instead of defaulting it.
This module imports no Ray, so the round trip is unit tested without a cluster.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tuneforge.config import JobConfig


class WorkerArgs(BaseModel):
    """The job plus what the driver prepared for it; every field must be given (``None`` where optional)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    job: JobConfig = Field(description="The job as validated on the driver (modes compiled to files).")
    base_dir: Path = Field(description="Materialised base model directory.")
    tokenizer_dir: Path = Field(description="Tokenizer directory.")
    total_steps: int = Field(ge=1, description="Optimizer steps of the whole run.")
    train_blocks: int = Field(ge=0, description="Tokenized training sequences in the train dataset.")
    storage_dir: Path = Field(description="This attempt's Ray storage (storage_path/name): checkpoints.")
    resume_from: Path | None = Field(description="Checkpoint a first attempt continues from (--resume).")
    tracking_uri: str | None = Field(description="MLflow tracking URI rank 0 logs to.")
    run_id: str | None = Field(description="MLflow run rank 0 logs to.")
    config_hash: str = Field(min_length=1, description="config_hash(job), stamped into checkpoints.")
    extensions_dir: Path = Field(description="DeepSpeed op-build cache directory.")

    def to_config(self) -> dict[str, Any]:
        """The plain, JSON-safe dict Ray Train ships to the workers as ``train_loop_config``."""
        return self.model_dump(mode="json")

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> WorkerArgs:
        """Validate what arrived on a worker; raises ``pydantic.ValidationError`` on a bad or missing key."""
        return cls.model_validate(config)


__all__ = ["WorkerArgs"]
