"""What a method implies for the rest of the pipeline, decided from its config alone (no model needed).

The driver needs these answers before any model exists: whether the checkpoint can be merged into
plain weights for the registry, and whether packed batches are safe (peft ignores ``position_ids``
for prompt and P-tuning, so packed documents would see each other).
"""

from __future__ import annotations

PROMPT_LEARNING = frozenset({"prompt_tuning", "prefix_tuning", "p_tuning"})
MERGEABLE_ADAPTERS = frozenset({"lora", "qlora", "ia3"})
FULL_WEIGHTS = frozenset({"full", "freeze"})


def registrable(name: str) -> bool:
    """Whether the registry (plain HF models) can hold this method's result."""
    return name in FULL_WEIGHTS or name in MERGEABLE_ADAPTERS


def supports_packing(name: str) -> bool:
    """Packing is exact only when the model honours per-document ``position_ids``."""
    return name not in PROMPT_LEARNING
