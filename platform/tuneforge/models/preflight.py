"""Checks on a local base model made on the driver, before data is read or Ray starts.

Problems with a model directory otherwise surface late and far away: a directory without a
tokenizer failed inside a Ray Data task ("Couldn't instantiate the backend tokenizer"), a tokenizer
larger than the model's embedding indexes out of range in the first forward pass, and a
``max_seq_len`` beyond the model's positions trains on garbage. Each is refused here with the
numbers and the config field to change.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tuneforge.config import ConfigError, ModelConfig

WEIGHT_PATTERNS = ("*.safetensors", "*.safetensors.index.json", "pytorch_model*.bin", "*.pt", "*.pth")
TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt", "spiece.model", "tokenizer.tiktoken",
)  # fmt: skip
_POSITION_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")


def _read_config(path: Path, field: str) -> dict[str, Any]:
    try:
        data = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"'{path}/config.json' cannot be read ({exc})", field=field) from None
    if not isinstance(data, dict):
        raise ConfigError(f"'{path}/config.json' is not a JSON object", field=field)
    text = data.get("text_config")  # multimodal configs keep the language model's numbers here
    return {**data, **text} if isinstance(text, dict) else data


def _has_tokenizer(folder: Path) -> bool:
    return any((folder / name).is_file() for name in TOKENIZER_FILES) or any(folder.glob("*.tiktoken"))


def check_model_dir(path: Path, field: str = "model.name_or_path") -> dict[str, Any]:
    """A local HF model directory: it exists, has config.json and weight files; returns the config."""
    if not path.exists():
        raise ConfigError(f"'{path}' does not exist (a local model directory or .gguf file)", field=field)
    if not path.is_dir():
        raise ConfigError(
            f"'{path}' is a file but not a .gguf model; give a Hugging Face model directory or .gguf file",
            field=field,
        )
    if not (path / "config.json").is_file():
        raise ConfigError(
            f"'{path}' is not a Hugging Face model directory (no config.json); tuneforge never downloads "
            "weights at run time",
            field=field,
        )
    if not any(any(path.glob(p)) for p in WEIGHT_PATTERNS):
        raise ConfigError(
            f"'{path}' has config.json but no weight files (model.safetensors, pytorch_model.bin, ...)",
            field=field,
        )
    return _read_config(path, field)


def check_tokenizer_dir(folder: Path, field: str, trust_remote_code: bool = False) -> Any:
    """A tokenizer directory that exists and loads; returns the loaded tokenizer."""
    if not folder.is_dir():
        raise ConfigError(f"'{folder}' is not a directory (a local tokenizer directory)", field=field)
    if not _has_tokenizer(folder):
        listed = ", ".join(TOKENIZER_FILES[:3])
        hint = "" if field == "model.tokenizer" else "; set model.tokenizer to a tokenizer directory"
        raise ConfigError(f"'{folder}' holds no tokenizer (none of {listed}, ...){hint}", field=field)
    from tuneforge.models.tokenizer import load_tokenizer

    try:
        return load_tokenizer(folder, trust_remote_code)
    except Exception as exc:  # transformers/tokenizers raise many types for a broken tokenizer
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        first = f"{type(exc).__name__}: {text}" if isinstance(exc, KeyError) or not text else text
        message = f"the tokenizer in '{folder}' cannot be loaded: {first[:300]}"
        raise ConfigError(message, field=field) from None


def position_limit(config: dict[str, Any], model_cfg: ModelConfig) -> tuple[int, str] | None:
    """(longest trainable sequence, how it was derived) for a model config, or None if it has no limit."""
    key = next((k for k in _POSITION_KEYS if isinstance(config.get(k), int)), None)
    if key is None:
        return None
    base = int(config[key])
    rope = model_cfg.rope_scaling
    if rope is None:
        return base, f"the model's {key} ({base})"
    limit = int(base * rope.factor)
    return limit, f"the model's {key} ({base}) x model.rope_scaling.factor ({rope.factor:g}) = {limit}"


def check_base_model(model_cfg: ModelConfig, max_seq_len: int) -> None:
    """Refuse a local base model that cannot train as configured; the tiny model and GGUF files pass.

    Checked: the directory, its weights and tokenizer (``model.tokenizer`` if set), that every
    tokenizer id has an embedding row, and that ``trainer.max_seq_len`` fits the model's positions
    (times the RoPE scaling factor when ``model.rope_scaling`` is set).
    """
    from tuneforge.models.gguf import is_gguf, local_model_path

    tok_field = "model.tokenizer" if model_cfg.tokenizer else "model.name_or_path"
    if model_cfg.name_or_path is None:
        if model_cfg.tokenizer:
            check_tokenizer_dir(Path(model_cfg.tokenizer), tok_field, model_cfg.trust_remote_code)
        return
    path = local_model_path(model_cfg.name_or_path)
    if is_gguf(path):
        if not path.is_file():
            raise ConfigError(f"'{path}' does not exist", field="model.name_or_path")
        return  # converted (config, weights and tokenizer together) by models/gguf.py
    config = check_model_dir(path)
    tok_dir = Path(model_cfg.tokenizer) if model_cfg.tokenizer else path
    tokenizer = check_tokenizer_dir(tok_dir, tok_field, model_cfg.trust_remote_code)
    rows = config.get("vocab_size")
    if isinstance(rows, int) and len(tokenizer) > rows:
        raise ConfigError(
            f"the tokenizer in '{tok_dir}' has {len(tokenizer)} tokens but the model's embedding has "
            f"{rows} rows (vocab_size in {path}/config.json): ids >= {rows} would index out of range; "
            "use the model's own tokenizer",
            field=tok_field,
        )
    limit = position_limit(config, model_cfg)
    if limit is not None and max_seq_len > limit[0]:
        rope_hint = "" if model_cfg.rope_scaling else " or set model.rope_scaling ({type: linear, factor: 2})"
        raise ConfigError(
            f"{max_seq_len} exceeds {limit[1]} in '{path}'; lower trainer.max_seq_len{rope_hint}",
            field="trainer.max_seq_len",
        )


__all__ = ["TOKENIZER_FILES", "WEIGHT_PATTERNS", "check_base_model", "check_model_dir", "check_tokenizer_dir"]
