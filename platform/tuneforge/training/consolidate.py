"""Streamed consolidation of ZeRO-3 weights into Hugging Face safetensors shards.

``engine._zero3_consolidated_16bit_state_dict`` builds the *whole* state dict on rank 0, which does
not fit for models larger than one process's memory. Here parameters are gathered one module at a
time (a collective, so every rank walks the same modules), rank 0 copies them into the current shard
and writes the shard as soon as it reaches ``max_shard_bytes``: peak memory is one shard plus one
module, whatever the model size. The layout (``model-0000k-of-0000n.safetensors`` + index, or a
single ``model.safetensors``) is what ``from_pretrained`` reads.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

DEFAULT_MAX_SHARD_BYTES = 2 * 1024**3


def max_shard_bytes() -> int:
    """Shard size cap: ``TUNEFORGE_MAX_SHARD_BYTES`` or 2 GiB."""
    return int(os.environ.get("TUNEFORGE_MAX_SHARD_BYTES", DEFAULT_MAX_SHARD_BYTES))


class _ShardWriter:
    """Accumulates tensors on rank 0 and flushes them to numbered shard files."""

    def __init__(self, target: Path, limit: int) -> None:
        self.target, self.limit = target, limit
        self.current: dict[str, torch.Tensor] = {}
        self.size = self.total = 0
        self.files: list[tuple[str, list[str]]] = []

    def add(self, key: str, tensor: torch.Tensor) -> None:
        t = tensor.detach().to("cpu", copy=True).contiguous()
        self.current[key] = t
        self.size += t.numel() * t.element_size()
        self.total += t.numel() * t.element_size()

    def maybe_flush(self, force: bool = False) -> None:
        if self.current and (force or self.size >= self.limit):
            name = f"part-{len(self.files):05d}.safetensors"
            save_file(self.current, str(self.target / name), metadata={"format": "pt"})
            self.files.append((name, list(self.current)))
            self.current, self.size = {}, 0

    def finish(self) -> None:
        """Rename parts to HF names and write the index when there is more than one shard."""
        self.maybe_flush(force=True)
        n = len(self.files)
        if n == 1:
            os.replace(self.target / self.files[0][0], self.target / "model.safetensors")
            return
        weight_map = {}
        for i, (part, keys) in enumerate(self.files, start=1):
            final = f"model-{i:05d}-of-{n:05d}.safetensors"
            os.replace(self.target / part, self.target / final)
            weight_map.update(dict.fromkeys(keys, final))
        index = {"metadata": {"total_size": self.total}, "weight_map": weight_map}
        (self.target / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))


def save_zero3_streamed(model: Any, target: Path, rank: int, limit: int | None = None) -> None:
    """Write the full weights of a ZeRO-3 partitioned ``model``; every rank must call this."""
    import deepspeed

    writer = _ShardWriter(target, limit or max_shard_bytes()) if rank == 0 else None
    seen: set[int] = set()

    def visit(module: torch.nn.Module, prefix: str) -> None:
        params = list(module.parameters(recurse=False))
        with deepspeed.zero.GatheredParameters(params, modifier_rank=None):
            if writer is not None:
                for name, p in module.named_parameters(recurse=False):
                    key = getattr(p, "ds_id", id(p))
                    if key in seen:  # tied weights are saved once; from_pretrained re-ties them
                        continue
                    seen.add(key)
                    writer.add(prefix + name, p)
                for name, buf in module.named_buffers(recurse=False):
                    if buf is not None and name not in module._non_persistent_buffers_set:
                        writer.add(prefix + name, buf)
        if writer is not None:
            writer.maybe_flush()
        for child_name, child in module.named_children():
            visit(child, f"{prefix}{child_name}.")

    visit(model, "")
    if writer is not None:
        writer.finish()
        model.config.save_pretrained(target)
        if getattr(model, "generation_config", None) is not None:
            model.generation_config.save_pretrained(target)
