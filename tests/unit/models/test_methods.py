"""Tuning methods without DeepSpeed: config validation, exact trainable counts, freeze rules, QLoRA guard.

The DeepSpeed x ZeRO evidence is in tests/integration/test_methods_matrix.py; these are the fast checks.
"""

from __future__ import annotations

import pytest
import torch

from tuneforge.config import (
    ConfigError,
    FreezeMethod,
    FullMethod,
    IA3Method,
    LoraMethod,
    PrefixTuningMethod,
    PromptTuningMethod,
    PTuningMethod,
    QLoraMethod,
    TinyModelConfig,
    config_from_dict,
)
from tuneforge.models import freeze
from tuneforge.models.factory import build_tiny_model
from tuneforge.models.freeze import on_optimizer_step
from tuneforge.models.io import save_hf
from tuneforge.models.methods import (
    QLORA_NEEDS_CUDA,
    MethodUnavailableError,
    apply_method,
    count_parameters,
    expected_trainable_params,
)
from tuneforge.testing import TINY_MODEL, toy_tokenizer

# TINY_MODEL with grouped-query attention (2 key/value heads for 4 query heads): k_proj and v_proj are then
# narrower than q_proj, so the analytic counts are checked on a shape where that difference shows.
TINY = TinyModelConfig(**{**TINY_MODEL.model_dump(), "num_key_value_heads": 2})


def _method(section: dict):
    return config_from_dict({"data": {"train_files": ["x.jsonl"]}, "method": section}).method


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    tok = toy_tokenizer()
    model = build_tiny_model(
        TINY, len(tok), seed=0, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id
    )
    return save_hf(model, tok, tmp_path_factory.mktemp("base") / "base")


def _fresh(base_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)


@pytest.mark.parametrize(
    ("section", "cls"),
    [
        ({"name": "full"}, FullMethod),
        ({"name": "freeze", "train_top_layers": 1}, FreezeMethod),
        ({"name": "lora", "use_dora": True}, LoraMethod),
        ({"name": "qlora", "quant_type": "fp4"}, QLoraMethod),
        ({"name": "prompt_tuning", "init": "text", "init_text": "hi"}, PromptTuningMethod),
        ({"name": "prefix_tuning", "prefix_projection": True}, PrefixTuningMethod),
        ({"name": "p_tuning", "encoder_reparameterization_type": "LSTM"}, PTuningMethod),
        ({"name": "ia3"}, IA3Method),
    ],
)
def test_method_union_selects_by_name(section, cls):
    assert type(_method(section)) is cls


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"name": "freeze"}, "freeze trains nothing"),
        ({"name": "freeze", "trainable_modules": ["("]}, "invalid regex"),
        ({"name": "freeze", "unfreeze_every": 0}, "unfreeze_every"),
        ({"name": "prompt_tuning", "init": "text"}, "needs init_text"),
        ({"name": "prompt_tuning", "init": "vocab"}, "init"),
        ({"name": "p_tuning", "encoder_reparameterization_type": "GRU"}, "encoder_reparameterization_type"),
        ({"name": "ia3", "feedforward_modules": ["up_proj"]}, "must also be in target_modules"),
        ({"name": "qlora", "bits": 8}, "bits"),
        ({"name": "prefix_tuning", "r": 4}, "r"),
        ({"name": "adapterx"}, "name"),
    ],
)
def test_bad_method_sections_are_config_errors(section, message):
    with pytest.raises(ConfigError) as err:
        _method(section)
    assert message in str(err.value) and "method" in str(err.value)


CASES = [
    FullMethod(),
    FreezeMethod(train_top_layers=1),
    FreezeMethod(train_top_layers=1, train_lm_head=True, train_embeddings=True),
    FreezeMethod(trainable_modules=[r"mlp\.down_proj", r"layers\.0\.input_layernorm"]),
    FreezeMethod(unfreeze_every=2),
    LoraMethod(r=4, target_modules=["q_proj", "v_proj"]),
    LoraMethod(r=2, use_dora=True, target_modules="all-linear"),
    LoraMethod(modules_to_save=["lm_head"]),
    IA3Method(),
    IA3Method(
        target_modules=["q_proj", "up_proj", "down_proj"], feedforward_modules=["up_proj", "down_proj"]
    ),
    PromptTuningMethod(num_virtual_tokens=5),
    PromptTuningMethod(num_virtual_tokens=5, init="text", init_text="hello world"),
    PrefixTuningMethod(num_virtual_tokens=3),
    PrefixTuningMethod(num_virtual_tokens=3, prefix_projection=True, encoder_hidden_size=16),
    PTuningMethod(num_virtual_tokens=3),
    PTuningMethod(num_virtual_tokens=3, encoder_hidden_size=8, encoder_reparameterization_type="LSTM"),
]


@pytest.mark.parametrize("method", CASES, ids=lambda m: f"{m.name}-{abs(hash(m.model_dump_json())) % 997}")
def test_trainable_count_matches_analytic(base_dir, method):
    model = apply_method(_fresh(base_dir), method, tokenizer_dir=base_dir)
    trainable, total = count_parameters(model)
    assert trainable == expected_trainable_params(model.config, method)
    assert 0 < trainable <= total


def test_analytic_counts_by_hand():
    """Independent arithmetic for the tiny shape (h=32, i=64, 2 layers, 4 heads, 2 kv heads, V=300)."""
    from transformers import LlamaConfig

    cfg = LlamaConfig(
        vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, tie_word_embeddings=False,
    )  # fmt: skip
    h, i, kv = 32, 64, 16  # kv = 2 heads x head_dim 8
    layer = h * h + 2 * h * kv + h * h + 3 * h * i + 2 * h
    assert expected_trainable_params(cfg, FullMethod()) == 2 * 300 * h + 2 * layer + h
    assert expected_trainable_params(cfg, FreezeMethod(train_top_layers=1)) == layer + h
    assert expected_trainable_params(cfg, LoraMethod(r=4, target_modules=["q_proj", "v_proj"])) == 2 * (
        4 * (h + h) + 4 * (h + kv)
    )
    assert expected_trainable_params(cfg, IA3Method()) == 2 * (kv + kv + i)
    assert expected_trainable_params(cfg, PromptTuningMethod(num_virtual_tokens=5)) == 5 * h
    assert expected_trainable_params(cfg, PrefixTuningMethod(num_virtual_tokens=3)) == 3 * 2 * 2 * kv


def test_freeze_selects_top_layers_and_head(base_dir):
    model = apply_method(_fresh(base_dir), FreezeMethod(train_top_layers=1, train_lm_head=True))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert "lm_head.weight" in trainable and "model.norm.weight" in trainable
    assert all(n.startswith("model.layers.1.") for n in trainable - {"lm_head.weight", "model.norm.weight"})
    assert "model.embed_tokens.weight" not in trainable


def test_freeze_regex_that_matches_nothing_is_an_error(base_dir):
    with pytest.raises(ValueError, match="matches no parameter"):
        apply_method(_fresh(base_dir), FreezeMethod(trainable_modules=["no_such_module"]))


def unfrozen_layers(model: torch.nn.Module) -> int:
    """Blocks currently receiving gradients under gradual unfreezing."""
    return getattr(model, freeze._UNFREEZER_ATTR).active_layers()


def test_gradual_unfreezing_keeps_lower_blocks_exact_until_their_turn(base_dir):
    """Plain AdamW (as DeepSpeed stage 0 runs it): block 0 bit-exact for 2 steps, then it trains."""
    model = apply_method(_fresh(base_dir), FreezeMethod(train_top_layers=1, unfreeze_every=2))
    q0 = model.model.layers[0].self_attn.q_proj.weight
    q1 = model.model.layers[1].self_attn.q_proj.weight
    start0, start1 = q0.detach().clone(), q1.detach().clone()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.0)
    x = torch.randint(0, 200, (2, 12), generator=torch.Generator().manual_seed(0))
    for step in range(4):
        on_optimizer_step(model, step)
        assert unfrozen_layers(model) == (1 if step < 2 else 2)
        model(input_ids=x, labels=x).loss.backward()
        opt.step()
        opt.zero_grad()
        if step == 1:
            assert torch.equal(q0, start0) and not torch.equal(q1, start1)
    assert not torch.equal(q0, start0)


def test_qlora_without_cuda_stops_before_any_work(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)

    class Boom(torch.nn.Module):  # any touch of the model would be "work"
        def __getattr__(self, name):
            raise AssertionError(f"model touched: {name}")

    with pytest.raises(MethodUnavailableError) as err:
        apply_method(Boom(), QLoraMethod())
    assert str(err.value) == f"method.name: {QLORA_NEEDS_CUDA}"
    assert isinstance(err.value, ConfigError) and isinstance(err.value, ValueError)


DOC_ROWS = {
    "full": FullMethod(),
    "freeze (train_top_layers=1)": FreezeMethod(train_top_layers=1),
    "freeze (train_top_layers=1, train_lm_head)": FreezeMethod(train_top_layers=1, train_lm_head=True),
    "freeze (unfreeze_every=N)": FreezeMethod(unfreeze_every=10),
    "lora (r=8, q/k/v/o)": LoraMethod(),
    "lora + use_dora": LoraMethod(use_dora=True),
    "lora (r=8, all-linear)": LoraMethod(target_modules="all-linear"),
    "qlora (r=8, q/k/v/o)": QLoraMethod(),
    "ia3 (k/v/down)": IA3Method(),
    "prompt_tuning (8 tokens)": PromptTuningMethod(),
    "prefix_tuning (8 tokens)": PrefixTuningMethod(),
    "prefix_tuning (8, projection)": PrefixTuningMethod(prefix_projection=True),
    "p_tuning (8, MLP)": PTuningMethod(),
    "p_tuning (8, LSTM)": PTuningMethod(encoder_reparameterization_type="LSTM"),
}


def test_demo_model_counts_match_docs():
    """docs/methods.md's table: measured on the demo model shape (tiny_cpu.yaml, vocab 512)."""
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[3] / "docs" / "methods.md").read_text()
    documented = {}
    for line in doc.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0] in DOC_ROWS:
            documented[cells[0]] = int(cells[1].replace(",", ""))
    assert set(documented) == set(DOC_ROWS)
    for label, method in DOC_ROWS.items():
        model = build_tiny_model(TinyModelConfig(), 512, seed=0)
        expected = expected_trainable_params(model.config, method)
        if not isinstance(method, QLoraMethod):
            assert count_parameters(apply_method(model, method))[0] == expected, label
        assert expected == documented[label], label


def test_qlora_driver_check_refuses_cpu_jobs():
    from tuneforge.models.methods import check_method_available

    with pytest.raises(MethodUnavailableError, match="method.name: qlora needs a CUDA GPU"):
        check_method_available(QLoraMethod(), use_gpu=False)
    check_method_available(QLoraMethod(), use_gpu=True)  # left to the GPU workers
    check_method_available(LoraMethod(), use_gpu=False)
