"""Checkpoints in Hugging Face layout, correct at every ZeRO stage.

Layout of a checkpoint directory:

* full fine-tuning: a complete HF model (``config.json`` + ``model.safetensors``) + tokenizer;
* full fine-tuning and ``freeze``: a complete HF model (the frozen weights are part of the model);
* adapters (LoRA/DoRA/QLoRA/IA3) and prompt learning (prompt/prefix/P-tuning): the standard PEFT layout
  (``adapter_config.json`` + ``adapter_model.safetensors``) + tokenizer, loadable by
  ``PeftModel.from_pretrained`` on the base named in ``base_model_name_or_path``;
* ``tuneforge/trainer_state.json``: step, epoch and the global micro-batches consumed in that epoch
  (the data position a resume skips to), the world size and accumulation that produced it, the
  eval loss at that step, and the job's config hash;
* ``tuneforge/ds/`` (intermediate checkpoints, ``resumable``): DeepSpeed's own
  ``engine.save_checkpoint`` state, every rank's share (optimizer and scheduler states, ZeRO
  partitions), and ``tuneforge/rng/rank<r>.json``, each rank's RNG states; a resumed run continues
  from exactly here. The final checkpoint is the export and carries none of it;
* ``tuneforge/ds/universal/`` (written on the first resume on another world size, ZeRO-1/2/3 only):
  the same DeepSpeed state converted to its world-size-free universal layout (training/universal.py);
* ``tuneforge/complete.rank<r>.json``: each rank's completion marker (training/checkpoint_store.py);
* ``tuneforge/probe.safetensors``: logits of the in-memory model on a fixed probe input, so any
  reader can check that what was saved is what was trained. Prompt/P-tuning prepend virtual tokens
  to the logits; the probe keeps only the positions of the real input, so it has the same shape for
  every method and compares directly with ``probe_logits`` of the reloaded model.

Under ZeRO-3 every rank takes part in gathering (it is a collective); only rank 0 writes. Adapters
are saved by ``save_pretrained`` on *every* rank inside ``GatheredParameters(trainable)``: for prompt
learning, peft runs the prompt encoder's forward while saving, which is itself a collective under
ZeRO-3 (rank 0 alone would desynchronise the ranks and hang the next collective); without the gather,
LoRA/IA3 tensors come out empty (``[0]``), which ``assert_no_empty_tensors`` refuses.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from tuneforge.models.io import atomic_dir
from tuneforge.models.methods import is_adapter
from tuneforge.training.checkpoint_store import write_marker
from tuneforge.training.consolidate import save_zero3_streamed
from tuneforge.training.rng import save_rng_state
from tuneforge.training.trainer_state import STATE_FILE, TrainerState
from tuneforge.training.universal import UNIVERSAL_DIR, ensure_converted, load_universal, needs_universal
from tuneforge.training.universal import world_size as current_world

if TYPE_CHECKING:
    from tuneforge.training.engine import TrainingEngine

DS_DIR = "tuneforge/ds"
DS_TAG = "state"
PROBE_FILE = "tuneforge/probe.safetensors"


class SavableTokenizer(Protocol):
    """What a checkpoint needs of a tokenizer: a transformers tokenizer, or ``local.NullTokenizer``."""

    def save_pretrained(self, save_directory: str | Path, /) -> object: ...


def probe_input(vocab_size: int, length: int = 32) -> torch.Tensor:
    """A fixed token sequence (independent of data) used to fingerprint a model's logits."""
    g = torch.Generator().manual_seed(1234)
    return torch.randint(0, vocab_size, (1, length), generator=g)


@torch.no_grad()
def probe_logits(
    module: torch.nn.Module, vocab_size: int, device: torch.device, input_ids: torch.Tensor | None = None
) -> torch.Tensor:
    """Logits on the probe input; a forward pass, hence collective under ZeRO-3 (call on all ranks).

    Only the positions of the real tokens are kept (prompt/P-tuning prepend virtual tokens), so the
    result is ``[1, length, vocab]`` for every method. A single unpadded row needs no position ids,
    also for prefix tuning (positions continue after the prefix, identically before and after reload).
    """
    ids = probe_input(vocab_size) if input_ids is None else input_ids
    was_training = module.training
    module.eval()
    out: torch.Tensor = module(input_ids=ids.to(device)).logits.float().cpu()
    module.train(was_training)
    return out[:, -ids.shape[1] :]


def _gathered(params: list[torch.nn.Parameter], zero_stage: int) -> AbstractContextManager[object]:
    import deepspeed

    if zero_stage == 3:
        gathered: AbstractContextManager[object] = deepspeed.zero.GatheredParameters(
            params, modifier_rank=None
        )
        return gathered
    return nullcontext()


def assert_no_empty_tensors(ckpt_dir: Path) -> None:
    """ZeRO-partitioned params saved without gathering come out as empty tensors; refuse them."""
    for f in ckpt_dir.glob("*.safetensors"):
        with safe_open(str(f), framework="pt") as st:
            for key in st.keys():
                if st.get_slice(key).get_shape() in ([0], []) and "inv_freq" not in key:
                    raise RuntimeError(f"checkpoint {f} holds an empty tensor '{key}': ZeRO gather failed")


def save_checkpoint(
    engine: TrainingEngine,
    tokenizer: SavableTokenizer,
    out_dir: Path | None,
    *,
    rank: int,
    zero_stage: int,
    state: TrainerState,
    probe: torch.Tensor | None,
    resumable: bool = False,
    rng: dict[str, Any] | None = None,
) -> Path | None:
    """Save the engine's model; every rank must call this. Returns the directory this rank reports.

    Rank 0 writes the export (model, tokenizer, state, probe) into a temporary sibling that is
    renamed into place at the end (atomic). With ``resumable``, every rank also writes its share of
    DeepSpeed's state and its RNG state (``rng``, captured before anything drew from the RNGs)
    into its own ``out_dir`` and reports it (Ray merges the ranks' folders on storage); each
    rank's completion marker is its last file. Without it, other ranks only join the collectives.
    """
    state.resumable = resumable
    if rank == 0:
        assert out_dir is not None
        with atomic_dir(out_dir) as tmp:
            _write_model(engine, tmp, rank, zero_stage)
            assert_no_empty_tensors(tmp)
            tokenizer.save_pretrained(tmp)
            (tmp / "tuneforge").mkdir(exist_ok=True)
            (tmp / STATE_FILE).write_text(json.dumps(asdict(state), indent=2))
            if probe is not None:
                ids = probe_input(int(engine.module.config.vocab_size), probe.shape[1])
                save_file({"input_ids": ids, "logits": probe.contiguous()}, str(tmp / PROBE_FILE))
            if resumable:
                _write_resume_state(engine, tmp, rank, rng)
            write_marker(tmp, rank)
        return out_dir
    scratch = Path(tempfile.mkdtemp(prefix="tuneforge-rank-"))
    try:
        _write_model(engine, scratch, rank, zero_stage)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if not resumable:
        return None
    assert out_dir is not None
    with atomic_dir(out_dir) as tmp:
        _write_resume_state(engine, tmp, rank, rng)
        write_marker(tmp, rank)
    return out_dir


def _write_resume_state(engine: TrainingEngine, target: Path, rank: int, rng: dict[str, Any] | None) -> None:
    """DeepSpeed's checkpoint (a collective) and this rank's RNG state, under ``target``.

    Frozen weights are left out (a LoRA run's base is reloaded from the base model); no ``latest``
    file, because the tag is fixed and the step lives in trainer_state.json.
    """
    engine.save_checkpoint(
        str(target / DS_DIR), tag=DS_TAG, client_state={}, save_latest=False, exclude_frozen_parameters=True
    )
    save_rng_state(target, rank, rng)


def load_resume_state(engine: TrainingEngine, ckpt_dir: Path, rank: int) -> bool:
    """Load DeepSpeed's state (every rank) and this rank's RNG state from ``ckpt_dir``.

    Returns whether this rank found its own RNG state (a rank added by a larger world has none).
    The module is loaded non-strictly: frozen weights were excluded when saving. A ZeRO-1/2/3
    checkpoint saved by another world size goes through DeepSpeed's universal checkpoint
    (training/universal.py), since its optimizer partitions are per rank; otherwise this is
    DeepSpeed's plain ``load_checkpoint``.
    """
    from tuneforge.training.rng import load_rng_state

    saved_world = TrainerState.load(ckpt_dir).world_size
    if needs_universal(engine.zero_optimization_stage(), saved_world, current_world()):
        if rank == 0:
            print(
                f"[tuneforge] {ckpt_dir.name} was saved by {saved_world} worker(s), resuming on "
                f"{current_world()}: loading it through a universal checkpoint ({UNIVERSAL_DIR})",
                flush=True,
            )
        ensure_converted(ckpt_dir / DS_DIR, DS_TAG, ckpt_dir / UNIVERSAL_DIR, rank)
        load_universal(engine, ckpt_dir / UNIVERSAL_DIR, DS_TAG)
        return load_rng_state(ckpt_dir, rank)
    path, _ = engine.load_checkpoint(
        str(ckpt_dir / DS_DIR),
        tag=DS_TAG,
        load_module_strict=False,
        load_optimizer_states=True,
        load_lr_scheduler_states=True,
    )
    if path is None:
        raise RuntimeError(f"{ckpt_dir}: DeepSpeed found no checkpoint under {DS_DIR}/{DS_TAG}")
    return load_rng_state(ckpt_dir, rank)


def _write_model(engine: TrainingEngine, target: Path, rank: int, zero_stage: int) -> None:
    model = engine.module
    if is_adapter(model):
        trainable = [p for p in model.parameters() if p.requires_grad]
        with _gathered(trainable, zero_stage):
            model.save_pretrained(str(target), is_main_process=rank == 0, safe_serialization=True)
    elif zero_stage == 3:  # gathered module by module, written shard by shard: bounded memory
        save_zero3_streamed(model, target, rank)
    elif rank == 0:
        model.save_pretrained(str(target), safe_serialization=True)


def load_probe(ckpt_dir: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, logits) recorded by the trainer when it saved ``ckpt_dir``."""
    from safetensors.torch import load_file

    t = load_file(str(Path(ckpt_dir) / PROBE_FILE))
    return t["input_ids"], t["logits"]


def verify_checkpoint(ckpt_dir: str | Path, atol: float = 1e-5) -> float:
    """Reload ``ckpt_dir`` from disk (full model or adapter + its base) and compare probe logits.

    Returns the max absolute difference; raises if it exceeds ``atol`` or shapes differ.
    """
    from tuneforge.models.generation import load_for_inference

    ids, expected = load_probe(ckpt_dir)
    model, _ = load_for_inference(ckpt_dir)
    got = probe_logits(model, int(ids.max()) + 1, torch.device("cpu"), input_ids=ids)
    if got.shape != expected.shape:
        raise RuntimeError(f"{ckpt_dir}: probe shape {tuple(got.shape)} != saved {tuple(expected.shape)}")
    diff = float((got - expected).abs().max())
    if diff > atol:
        raise RuntimeError(f"{ckpt_dir}: reloaded model differs from the trained one (max |diff| {diff:.2e})")
    return diff
