"""Model/tokenizer factories, methods and the DeepSpeed config mapping (no Ray, no DeepSpeed engine)."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from tuneforge.config import (
    DistributedConfig,
    FullMethod,
    LoraMethod,
    ModelConfig,
    TrainerConfig,
)
from tuneforge.models.base import prepare_base
from tuneforge.models.factory import build_tiny_model, resolve_dtype
from tuneforge.models.io import load_adapter_model, merge_adapter, save_hf
from tuneforge.models.methods import apply_method, count_parameters
from tuneforge.models.tokenizer import SPECIAL_TOKENS, load_tokenizer, train_bpe_tokenizer
from tuneforge.testing import TINY_MODEL, TOY_TEXTS, toy_tokenizer
from tuneforge.training.ds_config import build_ds_config


@pytest.fixture(scope="module")
def tokenizer():
    return toy_tokenizer()


def test_tokenizer_has_chatml_specials_as_single_tokens(tokenizer):
    for tok in SPECIAL_TOKENS:
        assert len(tokenizer.encode(tok, add_special_tokens=False)) == 1
    assert tokenizer.pad_token == "<|pad|>" and tokenizer.eos_token == "<|im_end|>"
    ids = tokenizer.encode(TOY_TEXTS[7], add_special_tokens=False)
    assert tokenizer.decode(ids) == TOY_TEXTS[7]


def test_tiny_model_is_deterministic_and_sized(tokenizer):
    cfg = TINY_MODEL
    a = build_tiny_model(cfg, len(tokenizer), seed=3)
    b = build_tiny_model(cfg, len(tokenizer), seed=3)
    c = build_tiny_model(cfg, len(tokenizer), seed=4)
    assert all(
        torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )
    assert not torch.equal(a.lm_head.weight, c.lm_head.weight)
    v, h, i, n = len(tokenizer), cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    per_layer = 4 * h * h + 3 * h * i + 2 * h
    assert count_parameters(a) == (2 * v * h + n * per_layer + h,) * 2


def test_prepare_base_roundtrip(tmp_path, tokenizer):
    base = prepare_base(ModelConfig(), TOY_TEXTS, tmp_path / "base", seed=0)
    model = AutoModelForCausalLM.from_pretrained(base)
    tok = load_tokenizer(base)
    assert tok.encode(TOY_TEXTS[0]) == train_bpe_tokenizer(TOY_TEXTS, 512).encode(TOY_TEXTS[0])
    assert model.config.vocab_size == len(tok)
    with pytest.raises(FileNotFoundError, match="never downloads"):
        prepare_base(ModelConfig(name_or_path=str(tmp_path / "nope")), TOY_TEXTS, tmp_path / "x", seed=0)


def test_lora_trainable_count_and_merge_equals_adapter(tmp_path, tokenizer):
    cfg = TINY_MODEL
    base = build_tiny_model(cfg, len(tokenizer), seed=0)
    save_hf(base, tokenizer, tmp_path / "base")
    method = LoraMethod(name="lora", r=4, alpha=8, target_modules=["q_proj", "v_proj"])
    model = apply_method(build_tiny_model(cfg, len(tokenizer), seed=0), method)
    trainable, _ = count_parameters(model)
    h = cfg.hidden_size
    assert trainable == cfg.num_hidden_layers * 2 * (4 * h + h * 4)  # A (r x h) + B (h x r), q and v
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05)
    model.save_pretrained(tmp_path / "adapter")
    ids = torch.arange(1, 17).unsqueeze(0)
    want = model.eval()(input_ids=ids).logits
    got = load_adapter_model(tmp_path / "base", tmp_path / "adapter")(input_ids=ids).logits
    assert torch.allclose(got, want, atol=1e-6)
    merged = AutoModelForCausalLM.from_pretrained(
        merge_adapter(tmp_path / "base", tmp_path / "adapter", tmp_path / "merged")
    )
    assert torch.allclose(merged(input_ids=ids).logits, want, atol=1e-5)


def test_full_method_trains_everything(tokenizer):
    model = apply_method(build_tiny_model(TINY_MODEL, len(tokenizer), seed=0), FullMethod(name="full"))
    trainable, total = count_parameters(model)
    assert trainable == total


@pytest.mark.parametrize("stage", [0, 1, 2, 3])
def test_ds_config_maps_job_spec(stage):
    t = TrainerConfig(micro_batch_size=3, grad_accum=2, grad_clip=0.5)
    d = DistributedConfig(zero_stage=stage, offload_optimizer=stage >= 1, offload_params=stage == 3)
    cfg = build_ds_config(t, d, world_size=4, dtype=torch.float32)
    assert cfg["train_batch_size"] == 3 * 2 * 4
    assert cfg["gradient_clipping"] == 0.5
    assert cfg["zero_optimization"]["stage"] == stage
    assert ("offload_optimizer" in cfg["zero_optimization"]) == (stage >= 1)
    assert ("offload_param" in cfg["zero_optimization"]) == (stage == 3)
    assert not cfg["bf16"]["enabled"] and not cfg["fp16"]["enabled"]
    assert build_ds_config(t, d, 1, torch.bfloat16)["bf16"]["enabled"]


def test_dtype_auto():
    assert resolve_dtype("auto", use_gpu=False) is torch.float32
    assert resolve_dtype("auto", use_gpu=True) is torch.bfloat16
