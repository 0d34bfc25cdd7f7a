"""Materialise the base model + tokenizer a run starts from, as a local HF directory.

Workers load from a directory (never from a hub), so the driver resolves the base once: the
configured local HF directory; a GGUF file (or ``pkg:`` file inside an installed package) converted
once into a cached HF directory (``models/gguf.py``); or a tiny random-init model built from the
config with a BPE tokenizer trained on the job's own training texts.

Weights load from safetensors only: a directory holding only pickle files (``pytorch_model.bin``)
is refused, or with ``model.allow_pickle`` converted once into a cached safetensors copy.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tuneforge.config import ModelConfig
from tuneforge.models.factory import build_tiny_model, check_weight_files, pickle_weight_files
from tuneforge.models.gguf import convert_gguf, is_gguf, local_model_path
from tuneforge.models.io import safetensors_copy, save_hf
from tuneforge.models.tokenizer import train_bpe_tokenizer

TRUST_REMOTE_CODE_TAG = "tuneforge.trust_remote_code"


def prepare_base(
    model_cfg: ModelConfig,
    texts: Iterable[str],
    out_dir: Path,
    seed: int,
    cache_root: Path | None = None,
) -> Path:
    """Return a local directory holding the base model and its tokenizer.

    GGUF bases are converted under ``cache_root`` (default: next to ``out_dir``), keyed by content.
    """
    if model_cfg.name_or_path is not None:
        path = local_model_path(model_cfg.name_or_path)
        if is_gguf(path):
            return convert_gguf(path, cache_root or out_dir.parent / "gguf-cache")
        if not (path / "config.json").exists():
            raise FileNotFoundError(
                f"model.name_or_path: '{path}' is not a local Hugging Face model directory "
                "(no config.json) or a .gguf file; tuneforge never downloads weights at run time"
            )
        check_weight_files(path, model_cfg.allow_pickle)  # pickle-only weights: refused unless allowed
        if pickle_weight_files(path) and not any(path.glob("*.safetensors")):
            cache = cache_root or out_dir.parent / "model-cache"
            return safetensors_copy(path, cache, model_cfg.trust_remote_code)
        return path
    tiny = model_cfg.tiny
    tokenizer = train_bpe_tokenizer(texts, tiny.vocab_size)
    model = build_tiny_model(
        tiny,
        vocab_size=len(tokenizer),
        seed=seed,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return save_hf(model, tokenizer, out_dir)


def model_trust_tags(model_cfg: ModelConfig) -> dict[str, str]:
    """Run tags recording the model's trust settings: ``tuneforge.trust_remote_code`` = true|false."""
    return {TRUST_REMOTE_CODE_TAG: str(model_cfg.trust_remote_code).lower()}


def tokenizer_dir(model_cfg: ModelConfig, base_dir: Path) -> Path:
    """Where the tokenizer lives: ``model.tokenizer`` if set, else next to the base weights."""
    return Path(model_cfg.tokenizer) if model_cfg.tokenizer else base_dir


def job_tokenizer(model_cfg: ModelConfig, texts: Iterable[str], work_dir: Path, seed: int, cache_root: Path):
    """The tokenizer a run of this job trains with, without starting anything.

    A real base (local, GGUF, ``pkg:``) brings its own (GGUF converted and cached as a run would);
    the tiny model's BPE is trained on ``texts`` as the run trains it.
    """
    from tuneforge.models.tokenizer import load_tokenizer

    if model_cfg.name_or_path is None and model_cfg.tokenizer is None:
        return train_bpe_tokenizer(texts, model_cfg.tiny.vocab_size)  # what prepare_base trains; no model
    base = prepare_base(model_cfg, texts, work_dir, seed, cache_root)
    return load_tokenizer(tokenizer_dir(model_cfg, base), model_cfg.trust_remote_code)
