"""Peak memory per worker, predicted from shapes alone: model states, activations, runtime.

Why arithmetic and not a trial run: ``tuneforge plan`` and the ``auto`` values of ``zero_stage`` and
``micro_batch_size`` must answer before any worker, model or GPU is reserved. Everything here works on
integers from the model's config (no weights, no torch, no DeepSpeed).

Model states follow the ZeRO paper's accounting, in DeepSpeed's own terms so that full fine-tuning in
16-bit weights agrees byte for byte with ``estimate_zero2_model_states_mem_needs`` and
``estimate_zero3_model_states_mem_needs`` (tests/unit/models/test_memory.py checks it). Per trainable
parameter: ``w`` bytes of weights (the model dtype), ``w`` of gradients, 4 of fp32 gradients, 4 of fp32
master weights, 8 of Adam moments. Where DeepSpeed keeps no master copy (ZeRO-0 with fp32 weights: the
client AdamW steps the weights themselves) the 4 + 4 are dropped. Adapters differ from DeepSpeed's
estimator, which treats every parameter as trainable: only the adapter's parameters carry gradients and
optimizer state; the frozen base is counted once, in its dtype (4-bit for QLoRA's quantized linears).

Activations are what autograd saves for the backward pass, counted tensor by tensor for the Llama block
as transformers 5 runs it with SDPA (measured with ``torch.autograd.graph.saved_tensors_hooks``: exact
for the tiny model and SmolLM2, fp32), plus the cross-entropy's fp32 log-softmax over the vocabulary,
which dominates small models, and a transient of logits-sized buffers alive during the loss's backward.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tuneforge.config import (
    FreezeMethod,
    FullMethod,
    IA3Method,
    JobConfig,
    LoraMethod,
    MethodConfig,
    QLoraMethod,
)

Offload = Literal["none", "optimizer", "optimizer+params"]
GiB = 1024**3
MiB = 1024**2

#: Resident memory of a CPU worker before its model: the process after importing torch, transformers,
#: peft, DeepSpeed and the training blocks (511 MiB), the DeepSpeed engine and loop around a model of
#: nothing (~570 MiB in all, jobs/bench/memory_fit.py's tiny case), plus Ray, Ray Data and MLflow's
#: imports in a Ray Train worker (+54 MiB); measured on the dev machines (torch 2.13 CPU).
CPU_RUNTIME_BYTES = 640 * MiB
#: Device memory the CUDA context and the kernels take before any tensor (typical for torch 2.x on A100/H100).
GPU_RUNTIME_BYTES = 1 * GiB
#: CPU only: glibc's malloc keeps the memory of tensors freed during the forward (its dynamic mmap
#: threshold moves large blocks onto the heap, which is not returned to the system), so the resident
#: peak holds about one more copy of the saved activations, minus what gradients and optimizer states
#: later reuse. Measured on SmolLM2 LoRA (jobs/bench/memory_fit.py): 4506 MiB resident by default,
#: 2918 MiB with MALLOC_MMAP_THRESHOLD_=131072 (a fixed threshold: freed blocks go back at once).
CPU_ALLOCATOR_RETENTION = 1.0
#: Logits-sized fp32 buffers alive at the loss beyond the saved log-softmax: the logits themselves (held
#: by the model output through the backward), the log-softmax gradient and the logits gradient.
LOSS_TRANSIENT_BUFFERS = 3


@dataclass(frozen=True)
class ModelShape:
    """The numbers of a Llama-style causal LM that memory depends on."""

    vocab: int
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    total_params: int
    largest_layer_params: int  # the biggest single module's own parameters (what ZeRO-3 gathers at once)


@dataclass(frozen=True)
class States:
    """Model-state bytes of one worker: on the accelerator and in host RAM (offloaded)."""

    device: int
    host: int


def weight_bytes(job: JobConfig) -> int:
    """Bytes per weight of the model dtype, ``auto`` resolved as training does (models/precision.py):
    bf16-mixed (the CPU default with bf16 instructions) keeps fp32 weights."""
    from tuneforge.models.precision import resolved_precision  # torch: only when a job is planned

    dtype = resolved_precision(job.model.dtype, job.distributed.use_gpu)
    return 4 if dtype in ("float32", "bf16-mixed") else 2


def model_states(
    shape: ModelShape, trainable: int, stage: int, offload: Offload, world: int, w: int, frozen_bytes: float
) -> States:
    """Model-state bytes per worker (ZeRO paper; DeepSpeed's estimator when everything is trainable).

    ``frozen_bytes`` is the bytes per frozen parameter (the dtype's, or about 0.5 for 4-bit QLoRA).
    """
    total, t = shape.total_params, trainable
    frozen = int((total - t) * frozen_bytes)
    mixed = w < 4
    if stage == 0:  # plain data parallel: everything replicated; fp32 ZeRO-0 steps the weights in place
        return States(w * t + w * t + (8 * t if mixed else 0) + 8 * t + frozen, 0)
    if stage in (1, 2):
        # stage 1 keeps the whole w-byte gradient; stage 2 partitions it (DeepSpeed's estimator: 2 + 18/N)
        grads16 = w * t if stage == 1 else 0
        if offload == "none":
            per = w + 16 if stage == 2 else 16
            return States(w * t + grads16 + int(per * t / world) + frozen, 0)
        return States(w * t + frozen, int(16 * t / world))
    # stage 3: every parameter (frozen ones too) partitioned; the largest module gathered (+ its grads)
    gathered = 2 * w * shape.largest_layer_params if t == total else w * shape.largest_layer_params
    frozen_part = int(frozen / world)
    if offload == "none":
        return States(gathered + int((w + 16) * t / world) + frozen_part, 0)
    if offload == "optimizer":
        return States(gathered + int(w * t / world) + frozen_part, int(16 * t / world))
    return States(gathered, int(16 * t / world) + int(w * t / world) + frozen_part)


def weight_state_bytes(
    shape: ModelShape, trainable: int, stage: int, world: int, w: int, frozen_bytes: float
) -> int:
    """The weights' share of ``model_states`` on one worker (the rest: gradients and optimizer states)."""
    weights = w * trainable + int((shape.total_params - trainable) * frozen_bytes)
    return weights // world if stage == 3 else weights


def deepspeed_estimate(
    shape: ModelShape, stage: int, offload: Offload, gpus_per_node: int, nodes: int = 1, buffer: float = 1.5
) -> tuple[int, int]:
    """(cpu, gpu) bytes as DeepSpeed's estimators report them for full 16-bit fine-tuning.

    The gpu figure is ``model_states`` (all trainable, w = 2); the cpu figure is DeepSpeed's per *node*
    host estimate with its ``additional_buffer_factor`` (zero_init assumed for stage 3), kept here so
    that the two can be compared exactly; tuneforge's own host figure is per worker, without buffer.
    """
    world = gpus_per_node * nodes
    gpu = model_states(shape, shape.total_params, stage, offload, world, 2, 2).device
    p = shape.total_params
    if stage in (1, 2):
        cpu = p * max(4 * world, 16) * buffer if offload != "none" else p * 4 * gpus_per_node * buffer
    elif offload == "optimizer+params":
        cpu = p * 18 * (1 / nodes) * buffer
    elif offload == "optimizer":
        cpu = p * 16 * (1 / nodes) * buffer
    else:
        cpu = shape.largest_layer_params * 4 * gpus_per_node * buffer
    return int(cpu), gpu


def _adapted(method: MethodConfig) -> tuple[set[str], int]:
    """(linear leaves whose input autograd keeps, LoRA rank per adapted linear) for a method."""
    leaves = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    if isinstance(method, FullMethod | FreezeMethod):
        return leaves, 0
    if isinstance(method, LoraMethod):
        targets = method.target_modules
        picked = leaves if targets == "all-linear" else {t.split(".")[-1] for t in targets} & leaves
        return picked, method.r
    if isinstance(method, IA3Method):
        return set(method.target_modules) & leaves, 0
    return set(), 0


def activation_bytes(
    shape: ModelShape, method: MethodConfig, batch: int, seq: int, w: int, checkpointing: bool = False
) -> int:
    """Bytes autograd saves in one micro-batch's forward, plus the loss's transient logits buffers.

    Per block and token, as measured (fp32, SDPA): each RMSNorm keeps its input, 1/rms and (when its
    weight trains) the normalised input, and its weighted output when a following linear needs it for a
    weight gradient; attention keeps q and k after RoPE, v, the output and a log-sum-exp per head; the
    SwiGLU MLP keeps gate, up and silu(gate) (and their product for down_proj's gradient); each LoRA
    linear keeps its rank-r intermediate. RMSNorm computes in fp32 whatever the dtype. With activation
    checkpointing only each block's input is kept, and one block is recomputed at a time.
    """
    h, i, kv = shape.hidden, shape.intermediate, shape.kv_heads * shape.head_dim
    adapted, rank = _adapted(method)
    norms_train = isinstance(method, FullMethod | FreezeMethod)
    norm = 4 * (h + 1) + (4 * h if norms_train else 0)  # input (upcast to fp32) + 1/rms (+ normalised)
    attn_in = w * h if adapted & {"q_proj", "k_proj", "v_proj"} else 0
    mlp_in = w * h if adapted & {"gate_proj", "up_proj"} else 0
    attention = w * (2 * h + 2 * kv) + 4 * shape.heads  # q, k, v, output; fp32 log-sum-exp per head
    mlp = w * 3 * i + (w * i if "down_proj" in adapted else 0)
    lora = w * rank * len(adapted)
    block = 2 * norm + attn_in + mlp_in + attention + mlp + lora
    tokens = batch * seq
    # A frozen base (LoRA, IA3): nothing upstream of the first block needs a gradient, so its first
    # RMSNorm keeps only its output (for the adapters), the embedding keeps no ids, the head no input.
    frozen_base = not norms_train and isinstance(method, LoraMethod | IA3Method)
    final_norm = norm + (0 if frozen_base else w * h)  # the LM head's input, for the head's gradient
    logits = 4 * shape.vocab  # the loss's fp32 log-softmax, kept for its backward
    ids = 8 if frozen_base else 16  # labels (and input ids for the embedding's gradient), int64
    first_block = -4 * (h + 1) if frozen_base else 0
    rope = 2 * w * shape.head_dim  # RoPE cos and sin, shared by every block
    per_token = final_norm + logits + ids + rope
    if checkpointing:
        per_token += shape.layers * w * h + block
    else:
        per_token += shape.layers * block
    transient = LOSS_TRANSIENT_BUFFERS * 4 * shape.vocab
    return tokens * (per_token + first_block + transient)


def frozen_bytes(method: MethodConfig, w: int) -> float:
    # QLoRA keeps the block linears in 4 bits (NF4 + an fp32 absmax per 64 weights); the rest in dtype
    return 0.5 + 4 / 64 if isinstance(method, QLoraMethod) else float(w)
