"""The configured model's shape, read without loading a weight: what the memory planner starts from.

The tiny model's config is built from the job; a local HF directory gives its ``config.json``; a GGUF
file gives its header (``transformers``' GGUF reader with ``return_tensors=False``: metadata only, no
dequantisation). Parameter counts come from ``models.param_counts`` (the counts the tests check
exactly against real, wrapped models).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from tuneforge.config import JobConfig, ModelConfig
from tuneforge.models.memory import ModelShape
from tuneforge.models.param_counts import expected_trainable_params, parameter_shapes

if TYPE_CHECKING:
    from transformers import PretrainedConfig


def model_config(model: ModelConfig, base_dir: str | Path | None = None) -> PretrainedConfig:
    """The HF config of the job's model; ``base_dir`` (a prepared base) is read when given."""
    from transformers import AutoConfig

    if base_dir is not None and (Path(base_dir) / "config.json").is_file():
        return AutoConfig.from_pretrained(str(base_dir))
    if model.name_or_path is None:
        from tuneforge.models.factory import tiny_llama_config

        return tiny_llama_config(model.tiny, model.tiny.vocab_size)
    from tuneforge.models.gguf import is_gguf, local_model_path

    path = local_model_path(model.name_or_path)
    if is_gguf(path):
        from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

        meta = load_gguf_checkpoint(str(path), return_tensors=False)["config"]
        meta = {k: v for k, v in meta.items() if not k.startswith("_")}
        return AutoConfig.for_model(meta.pop("model_type"), **meta)
    return AutoConfig.from_pretrained(str(path), trust_remote_code=model.trust_remote_code)


def shape_of(cfg: PretrainedConfig) -> ModelShape:
    """Dimensions, total parameters (tied head counted once) and the largest module's parameters."""
    shapes = parameter_shapes(cfg)
    modules: dict[str, int] = {}
    for name, dims in shapes.items():
        n = 1
        for d in dims:
            n *= d
        owner = name.rsplit(".", 1)[0]
        modules[owner] = modules.get(owner, 0) + n
    hidden, heads = int(cfg.hidden_size), int(cfg.num_attention_heads)
    return ModelShape(
        vocab=int(cfg.vocab_size),
        hidden=hidden,
        intermediate=int(cfg.intermediate_size),
        layers=int(cfg.num_hidden_layers),
        heads=heads,
        kv_heads=int(getattr(cfg, "num_key_value_heads", None) or heads),
        head_dim=int(getattr(cfg, "head_dim", None) or hidden // heads),
        total_params=sum(modules.values()),
        largest_layer_params=max(modules.values()),
    )


def job_shape(job: JobConfig, base_dir: str | Path | None = None) -> tuple[ModelShape, int]:
    """(shape, trainable parameters) of the job's model under its method."""
    cfg = model_config(job.model, base_dir)
    return shape_of(cfg), expected_trainable_params(cfg, job.method)
