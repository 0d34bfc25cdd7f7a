"""The ``freeze`` method: train some blocks/modules of the base model in full, freeze the rest.

Selection works on parameter *names* (``select_trainable``), so the same rule decides what
``apply_freeze`` unfreezes on a real model and what ``expected_trainable_params`` counts analytically.

Gradual unfreezing under DeepSpeed: the optimizer (and ZeRO's flat partitions and gradient hooks) is
built once, over the parameters that have ``requires_grad`` at ``deepspeed.initialize``. Flipping
``requires_grad`` later would leave newly unfrozen weights outside the optimizer (silently untrained at
ZeRO-1/2/3). So every block that will *ever* be unfrozen is trainable from the start, and a gradient
hook zeroes the gradients of blocks not yet unfrozen. With zero gradients from step 0, AdamW's moments
stay zero and the update is exactly zero, so those weights do not move (unless ``trainer.weight_decay``
> 0: decoupled decay still shrinks them). The loop calls ``on_optimizer_step`` after every optimizer
step. The cost: optimizer state for all eventually-trained weights from the first step, and a full
backward pass.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import nn

from tuneforge.config import FreezeMethod

if TYPE_CHECKING:
    from transformers import PreTrainedModel

_LAYER = re.compile(r"(?:^|\.)(?:layers|h|blocks|block)\.(\d+)\.")
_FINAL_NORM = re.compile(r"(?:^|\.)(?:norm|ln_f|final_layer_norm|final_layernorm)\.(?:weight|bias)$")
_UNFREEZER_ATTR = "_tuneforge_unfreezer"


def layer_index(name: str) -> int | None:
    """Index of the transformer block a parameter belongs to (``model.layers.3.mlp...`` -> 3)."""
    m = _LAYER.search(name)
    return int(m.group(1)) if m else None


def start_layers(method: FreezeMethod) -> int:
    """Blocks trained from step 0: ``train_top_layers``, or 1 when gradual unfreezing starts from null."""
    if method.train_top_layers is not None:
        return method.train_top_layers
    return 1 if method.unfreeze_every else 0


@dataclass
class Selection:
    """Which parameter names are trainable, and which of those wait for gradual unfreezing."""

    trainable: set[str] = field(default_factory=set)
    #: name -> block index, for trainable names that are masked until their block is unfrozen
    gated: dict[str, int] = field(default_factory=dict)


def select_trainable(
    names: Iterable[str],
    num_layers: int,
    method: FreezeMethod,
    embedding_names: Iterable[str] = (),
    head_names: Iterable[str] = (),
) -> Selection:
    """Apply the freeze rules to parameter names.

    Top blocks count from the last one down; the final norm trains with them (it sits on top of the
    stack and is tiny). ``trainable_modules`` regexes are searched in full parameter names.
    """
    names = list(names)
    patterns = [re.compile(p) for p in method.trainable_modules]
    start = min(start_layers(method), num_layers)
    eventual = num_layers if method.unfreeze_every else start
    embedding_names, head_names = set(embedding_names), set(head_names)
    sel = Selection()
    for name in names:
        idx = layer_index(name)
        by_regex = any(p.search(name) for p in patterns)
        if by_regex or (method.train_embeddings and name in embedding_names):
            sel.trainable.add(name)
        elif method.train_lm_head and name in head_names:
            sel.trainable.add(name)
        elif idx is not None and idx >= num_layers - eventual:
            sel.trainable.add(name)
            if idx < num_layers - start:
                sel.gated[name] = idx
        elif idx is None and eventual > 0 and _FINAL_NORM.search(name):
            sel.trainable.add(name)
    for pattern in patterns:
        if not any(pattern.search(n) for n in names):
            raise ValueError(f"method.trainable_modules: {pattern.pattern!r} matches no parameter")
    return sel


class GradualUnfreezer:
    """Zeroes gradients of blocks not yet unfrozen; ``set_step`` moves the boundary down."""

    def __init__(self, num_layers: int, start: int, every: int) -> None:
        self.num_layers, self.start, self.every = num_layers, start, every
        self.step = 0

    def active_layers(self) -> int:
        """How many blocks from the top receive gradients at the current step."""
        return min(self.num_layers, self.start + self.step // self.every)

    def is_unfrozen(self, layer: int) -> bool:
        return layer >= self.num_layers - self.active_layers()

    def set_step(self, step: int) -> None:
        self.step = step

    def hook(self, layer: int):
        """Tensor hook: runs before DeepSpeed's accumulate/reduce hooks, so ZeRO sees the zeros."""

        def mask(grad: torch.Tensor) -> torch.Tensor:
            return grad if self.is_unfrozen(layer) else torch.zeros_like(grad)

        return mask


def _embedding_param_names(model: PreTrainedModel) -> tuple[list[str], list[str]]:
    by_id = {id(p): n for n, p in model.named_parameters()}
    emb = model.get_input_embeddings()
    head = model.get_output_embeddings()
    emb_names = [by_id[id(p)] for p in emb.parameters() if id(p) in by_id] if emb is not None else []
    head_names = [by_id[id(p)] for p in head.parameters() if id(p) in by_id] if head is not None else []
    return emb_names, head_names


def apply_freeze(model: PreTrainedModel, method: FreezeMethod) -> nn.Module:
    """Set ``requires_grad`` per the freeze rules and install the gradual-unfreezing hooks."""
    num_layers = int(model.config.num_hidden_layers)
    emb_names, head_names = _embedding_param_names(model)
    named = dict(model.named_parameters())
    sel = select_trainable(named, num_layers, method, emb_names, head_names)
    for name, p in named.items():
        p.requires_grad_(name in sel.trainable)
    if method.unfreeze_every:
        unfreezer = GradualUnfreezer(num_layers, min(start_layers(method), num_layers), method.unfreeze_every)
        for name, idx in sel.gated.items():
            named[name].register_hook(unfreezer.hook(idx))
        setattr(model, _UNFREEZER_ATTR, unfreezer)
    return model


def on_optimizer_step(model: nn.Module, step: int) -> None:
    """Per-step hook for the training loop: advance gradual unfreezing (a no-op for other methods)."""
    unfreezer = getattr(model, _UNFREEZER_ATTR, None)
    if unfreezer is not None:
        unfreezer.set_step(step)
