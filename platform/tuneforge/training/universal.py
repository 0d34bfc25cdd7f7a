"""Resuming a ZeRO-1/2/3 checkpoint on a different number of ranks, via DeepSpeed's universal checkpoint.

DeepSpeed saves ZeRO optimizer state (fp32 master weights, Adam moments) as one flat partition per
data-parallel rank, so ``engine.load_checkpoint`` refuses a checkpoint saved by another world size,
and its elastic path asserts on a client ``torch.optim.AdamW`` (no ``step`` in its param groups).
The universal checkpoint is DeepSpeed's world-size-free layout: one folder per parameter holding its
full ``fp32``, ``exp_avg``, ``exp_avg_sq`` and ``step``. ``ds_to_universal`` builds it offline from
the per-rank files, reading one rank's file and one parameter at a time (bounded memory, also for
ZeRO-3), and an engine configured with ``checkpoint.load_universal`` cuts its own partition out of it.

Conversion happens once per checkpoint, on the first resume that needs it: global rank 0 writes
``tuneforge/ds/universal`` next to the saved ``tuneforge/ds/state`` (a temporary sibling renamed
into place, so a folder that exists is whole and later resumes reuse it) while the other ranks wait;
then every rank loads it. Nothing is converted when the world size is unchanged: that path stays
DeepSpeed's plain ``load_checkpoint``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist

if TYPE_CHECKING:
    from tuneforge.training.engine import TrainingEngine

UNIVERSAL_DIR = "tuneforge/ds/universal"


def world_size() -> int:
    """The current data-parallel world size (no tensor/pipeline parallelism here)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def needs_universal(zero_stage: int, saved_world: int, current_world: int) -> bool:
    """Whether a resume must go through the universal checkpoint.

    Only ZeRO-1/2/3 partition optimizer state per rank; ZeRO-0 state is whole on every rank and
    loads on any world size directly.
    """
    return zero_stage > 0 and saved_world != current_world


def convert(ds_dir: Path, tag: str, out_dir: Path) -> None:
    """Convert ``ds_dir/tag`` (every rank's DeepSpeed files) into a universal checkpoint ``out_dir/tag``.

    Runs ``ds_to_universal`` in this process (one worker: no process pool inside a Ray worker).
    ``inject_missing_state`` adds the universal-checkpoint metadata that only Megatron-style clients
    write. The result is built in a temporary sibling and renamed, so ``out_dir`` is never partial.
    """
    from deepspeed.checkpoint import ds_to_universal

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        args = argparse.Namespace(
            input_folder=str(ds_dir / tag),
            output_folder=str(staging / tag),
            num_extract_workers=1,
            num_merge_workers=1,
            keep_temp_folder=False,
            strict=True,
            inject_missing_state=True,
        )
        with contextlib.redirect_stdout(io.StringIO()):  # its progress lines, not ours to show
            ds_to_universal.main(args)
        staging.replace(out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def ensure_converted(ds_dir: Path, tag: str, out_dir: Path, rank: int) -> None:
    """Rank 0 converts (unless ``out_dir`` exists already); every rank returns once it is there.

    The broadcast is the barrier and carries rank 0's error, so a failed conversion raises on every
    rank instead of leaving the others waiting on a collective.
    """
    error: list[str | None] = [None]
    failure: Exception | None = None
    if rank == 0 and not out_dir.is_dir():
        try:
            convert(ds_dir, tag, out_dir)
        except Exception as exc:  # noqa: BLE001 - re-raised below, on every rank
            failure, error[0] = exc, f"{type(exc).__name__}: {exc}"
    if world_size() > 1:
        dist.broadcast_object_list(error, src=0)
    if error[0] is not None:
        raise RuntimeError(
            f"converting {ds_dir / tag} to a universal checkpoint failed on rank 0: {error[0]}"
        ) from failure


@contextlib.contextmanager
def _universal_loading(engine: TrainingEngine) -> Iterator[None]:
    """``checkpoint.load_universal`` for the duration of one load.

    The flag is read only by DeepSpeed's load path; setting it in the ds_config would mean knowing,
    before the engine exists, which checkpoint the workers will pick.
    """
    before = engine._config.load_universal_checkpoint
    engine._config.load_universal_checkpoint = True
    try:
        yield
    finally:
        engine._config.load_universal_checkpoint = before


def _unshare_step_tensors(engine: TrainingEngine) -> None:
    """Give every optimizer state its own ``step`` tensor.

    DeepSpeed's ZeRO-3 universal load assigns one loaded ``step`` tensor to every sub-group, and
    torch's AdamW increments it in place: with two param groups (decay / no decay) the step then
    advanced twice per optimizer step and the bias correction drifted (a 6e-3 loss difference two
    steps after resuming, measured); with a copy each, the losses match the uninterrupted run.
    """
    base = getattr(engine.optimizer, "optimizer", engine.optimizer)
    for state in base.state.values():
        if torch.is_tensor(state.get("step")):
            state["step"] = state["step"].clone()


def _group_settings(engine: TrainingEngine) -> list[dict[str, Any]]:
    """Every optimizer param group's hyperparameters (all but its tensors)."""
    return [{k: v for k, v in g.items() if k != "params"} for g in engine.optimizer.param_groups]


def _restore_group_settings(engine: TrainingEngine, before: list[dict[str, Any]]) -> None:
    """Undo ZeRO-3's universal load copying param group 0's hyperparameters into every group.

    tuneforge's AdamW has a decayed and a non-decayed group (training/engine.py); after that copy
    the norms and biases decayed too (a 2e-5 loss difference two steps on, measured). The settings
    come from the config, which a resume may not change, so the fresh engine's own are the saved
    ones; the learning rate is the one the restored schedule last set (per group).
    """
    groups = engine.optimizer.param_groups
    last_lr = engine.lr_scheduler.get_last_lr() if engine.lr_scheduler is not None else None
    for i, (group, settings) in enumerate(zip(groups, before, strict=True)):
        group.update({k: v for k, v in settings.items() if k != "lr"})
        if last_lr is not None:
            group["lr"] = last_lr[i]


def load_universal(engine: TrainingEngine, universal_dir: Path, tag: str) -> None:
    """Load master weights, optimizer moments, step, LR schedule and counters from a universal checkpoint.

    The module's weights come from the fp32 masters (frozen weights were never saved and stay those
    of the base model, as in the plain path).
    """
    settings = _group_settings(engine)
    with _universal_loading(engine):
        path, _ = engine.load_checkpoint(
            str(universal_dir), tag=tag, load_module_strict=False,
            load_optimizer_states=True, load_lr_scheduler_states=True,
        )  # fmt: skip
    if path is None:
        raise RuntimeError(f"DeepSpeed found no universal checkpoint under {universal_dir}/{tag}")
    _unshare_step_tensors(engine)
    _restore_group_settings(engine, settings)
