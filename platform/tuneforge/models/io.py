"""Saving and merging models in Hugging Face layout (safetensors only).

Writes go to a temporary sibling directory that is renamed into place, so a crash never leaves a
half-written model where a reader (the registry, a resume) would pick it up.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from peft import PeftModel
from transformers import AutoModelForCausalLM, PreTrainedModel

from tuneforge.data.files import fsync_path, fsync_tree
from tuneforge.models.tokenizer import load_tokenizer


@contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield a temp dir that replaces ``target`` only if the block finishes without error."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield tmp
        # Renames are atomic but not durable: without the fsyncs a power loss after the rename
        # can leave ``target`` pointing at empty or truncated files (ext4/xfs delay the data).
        fsync_tree(tmp)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
        fsync_path(target.parent)  # the rename itself
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def save_hf(
    model: PreTrainedModel | PeftModel,
    tokenizer,
    out_dir: str | Path,
    state_dict: dict | None = None,
    extra: Callable[[Path], None] | None = None,
) -> Path:
    """Save model (+ tokenizer) atomically with safetensors; ``extra`` may add files before commit."""
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(str(tmp), state_dict=state_dict, safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        if extra is not None:
            extra(tmp)
    return Path(out_dir)


def safetensors_copy(model_dir: str | Path, cache_root: str | Path, trust_remote_code: bool = False) -> Path:
    """The cached safetensors twin of a pickle-only model directory (converted on first use).

    Called only once ``model.allow_pickle`` has allowed it (``factory.check_weight_files``): the
    pickle files are read here, once, and every later load (workers, merges, the registry) reads
    safetensors. Keyed by the pickle files' content, so an edited directory is converted again.
    """
    import hashlib

    from tuneforge.data.files import sha256_file
    from tuneforge.models.factory import pickle_weight_files

    source = Path(model_dir).resolve()
    pickles = pickle_weight_files(source)
    digest = hashlib.sha256()
    for f in pickles:
        digest.update(f"{f.name}:{sha256_file(f)}\n".encode())
    out = Path(cache_root) / f"pickle-{digest.hexdigest()[:16]}"
    if (out / "config.json").exists() and any(out.glob("*.safetensors")):
        return out
    skip = {f.name for f in pickles} | {"pytorch_model.bin.index.json"}
    model = AutoModelForCausalLM.from_pretrained(
        str(source), dtype="auto", use_safetensors=False, trust_remote_code=trust_remote_code
    )

    def _copy_side_files(tmp: Path) -> None:  # tokenizer, generation config: everything but weights
        for f in source.iterdir():
            if f.is_file() and f.name not in skip and not (tmp / f.name).exists():
                shutil.copy2(f, tmp / f.name)

    return save_hf(model, None, out, extra=_copy_side_files)


def load_adapter_model(base_dir: str | Path, adapter_dir: str | Path, trust_remote_code: bool = False):
    """Base model from ``base_dir`` (safetensors only) plus the adapter in ``adapter_dir``, in eval mode."""
    base = AutoModelForCausalLM.from_pretrained(
        str(base_dir), trust_remote_code=trust_remote_code, use_safetensors=True
    )
    return PeftModel.from_pretrained(base, str(adapter_dir)).eval()


def merge_adapter(
    base_dir: str | Path, adapter_dir: str | Path, out_dir: str | Path, trust_remote_code: bool = False
) -> Path:
    """Fold a LoRA/IA3 adapter into its base and write a plain HF model (plus the tokenizer)."""
    merged = load_adapter_model(base_dir, adapter_dir, trust_remote_code).merge_and_unload()
    tok_dir = adapter_dir if (Path(adapter_dir) / "tokenizer_config.json").exists() else base_dir
    return save_hf(merged, load_tokenizer(tok_dir, trust_remote_code), out_dir)
