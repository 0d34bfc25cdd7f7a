"""The memory planner's decisions: which ZeRO stage, offload and micro-batch fit a worker, and why not.

``models.memory`` predicts bytes; this module lays the choices out for a job (``plan``), picks the
fastest that fits (``recommend``), resolves ``zero_stage: auto`` / ``micro_batch_size: auto``
(``resolved``) and words the one-line refusal ``tuneforge train`` and ``tuneforge plan`` print
(``problem``). Nothing here reads the machine: the caller passes the worker's memory.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from tuneforge.config import JobConfig
from tuneforge.models.memory import (
    CPU_ALLOCATOR_RETENTION,
    CPU_RUNTIME_BYTES,
    GPU_RUNTIME_BYTES,
    LOSS_TRANSIENT_BUFFERS,
    GiB,
    ModelShape,
    Offload,
    activation_bytes,
    frozen_bytes,
    model_states,
    weight_bytes,
    weight_state_bytes,
)

#: Fastest first: a lower stage communicates less; offloading moves the optimizer step to the CPU.
CHOICES: tuple[tuple[int, Offload], ...] = (
    (0, "none"),
    (1, "none"),
    (2, "none"),
    (3, "none"),
    (1, "optimizer"),
    (2, "optimizer"),
    (3, "optimizer"),
    (3, "optimizer+params"),
)
#: Share of the worker's memory a plan may use: the prediction is validated to +-20%, the rest is margin.
HEADROOM = 0.9
#: ``micro_batch_size: auto`` tries powers of two up to this (bigger batches stop paying off on CPU).
MAX_AUTO_MICRO_BATCH = 32


@dataclass(frozen=True)
class Choice:
    """One ZeRO stage + offload choice, with its predicted peak memory per worker."""

    zero_stage: int
    offload: Offload
    micro_batch_size: int
    model_states: int
    offloaded: int
    activations: int
    activations_checkpointed: int
    retained: int  # CPU: freed activation memory glibc's heap still holds at the peak (models.memory)
    runtime: int
    total: int
    total_checkpointed: int
    available: int
    fits: bool
    fits_checkpointed: bool

    def label(self) -> str:
        return f"ZeRO-{self.zero_stage}" + ("" if self.offload == "none" else f" + offload {self.offload}")

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class Plan:
    """Every choice for one job on one worker size, and the recommendation (None: nothing fits)."""

    world_size: int
    trainable_params: int
    total_params: int
    weight_bytes: float
    choices: list[Choice] = field(default_factory=list)
    recommended: Choice | None = None


def plan(
    job: JobConfig,
    shape: ModelShape,
    trainable: int,
    world_size: int,
    available: int,
    runtime: int | None = None,
    micro_batch_size: int | None = None,
) -> Plan:
    """Every ZeRO/offload choice for ``job`` on workers of ``available`` bytes, and the recommendation.

    On a CPU worker the accelerator and the host are the same RAM, so offloaded bytes add to the total;
    on a GPU ``available`` is the device's memory and offloaded bytes go to host RAM.
    ``micro_batch_size`` None: the job's value, or the largest power of two that fits when it is auto.
    """
    gpu = job.distributed.use_gpu
    w = weight_bytes(job)
    runtime = (GPU_RUNTIME_BYTES if gpu else CPU_RUNTIME_BYTES) if runtime is None else runtime
    auto_mb = job.trainer.micro_batch_size_auto and micro_batch_size is None
    candidates = [1 << k for k in range(MAX_AUTO_MICRO_BATCH.bit_length())][::-1] if auto_mb else None
    choices = []
    for stage, offload in CHOICES:
        for mb in candidates or [micro_batch_size or job.trainer.micro_batch_size]:
            c = _choice(job, shape, trainable, world_size, available, runtime, stage, offload, mb, w)
            if c.fits or mb == 1 or candidates is None:
                break
        choices.append(c)
    return Plan(world_size, trainable, shape.total_params, w, choices, recommend(choices))


def _choice(
    job: JobConfig,
    shape: ModelShape,
    trainable: int,
    world: int,
    available: int,
    runtime: int,
    stage: int,
    offload: Offload,
    mb: int,
    w: int,
) -> Choice:
    method, seq = job.method, job.trainer.max_seq_len
    states = model_states(shape, trainable, stage, offload, world, w, frozen_bytes(method, w))
    act = activation_bytes(shape, method, mb, seq, w)
    act_ckpt = activation_bytes(shape, method, mb, seq, w, checkpointing=True)
    cpu = not job.distributed.use_gpu  # CPU: "offloaded" is the same RAM, and glibc's heap keeps memory
    resident = states.device + (states.host if cpu else 0)
    retained = retained_ckpt = 0
    if cpu:
        weights = weight_state_bytes(shape, trainable, stage, world, w, frozen_bytes(method, w))
        reusable = max(0, resident - weights)  # gradients and optimizer states reuse the retained heap
        loss = mb * seq * LOSS_TRANSIENT_BUFFERS * 4 * shape.vocab
        retained = max(0, int(CPU_ALLOCATOR_RETENTION * (act - loss)) - reusable)
        retained_ckpt = max(0, int(CPU_ALLOCATOR_RETENTION * (act_ckpt - loss)) - reusable)
    base = resident + runtime
    limit = int(available * HEADROOM)
    return Choice(
        zero_stage=stage,
        offload=offload,
        micro_batch_size=mb,
        model_states=states.device,
        offloaded=states.host,
        activations=act,
        activations_checkpointed=act_ckpt,
        retained=retained,
        runtime=runtime,
        total=base + act + retained,
        total_checkpointed=base + act_ckpt + retained_ckpt,
        available=available,
        fits=base + act + retained <= limit,
        fits_checkpointed=base + act_ckpt + retained_ckpt <= limit,
    )


def recommend(choices: list[Choice]) -> Choice | None:
    """The fastest choice that fits: ``CHOICES`` order (lowest stage, no offload first), then the
    largest micro-batch. Activation checkpointing is not counted on (tuneforge does not switch it on)."""
    fitting = [c for c in choices if c.fits]
    if not fitting:
        return None
    order = {key: n for n, key in enumerate(CHOICES)}
    return min(fitting, key=lambda c: (order[(c.zero_stage, c.offload)], -c.micro_batch_size))


def _gib(n: int) -> str:
    return f"{n / GiB:.2f} GiB"


def describe(c: Choice) -> str:
    """One choice in words: stage, offload, micro-batch."""
    return f"{c.label()}, micro_batch_size {c.micro_batch_size}"


def requested(job: JobConfig, p: Plan) -> Choice | None:
    """The choice the job will run: its own stage/offload/micro-batch, or the best fitting one for ``auto``.

    None when an ``auto`` value finds nothing that fits (``problem`` explains).
    """
    d = job.distributed
    want: Offload = "optimizer+params" if d.offload_params else "optimizer" if d.offload_optimizer else "none"
    rows = [c for c in p.choices if (d.zero_stage_auto or c.zero_stage == d.zero_stage)]
    if want != "none" or not d.zero_stage_auto:  # an offload the job set is kept
        rows = [c for c in rows if c.offload == want]
    if d.zero_stage_auto or job.trainer.micro_batch_size_auto:
        return recommend(rows)
    return rows[0] if rows else None


def problem(job: JobConfig, p: Plan) -> str | None:
    """One line saying why the job cannot fit its workers (needed vs available, what would fit), or None."""
    chosen = requested(job, p)
    if chosen is not None and chosen.fits:
        return None
    d = job.distributed
    worst = chosen or min(
        (c for c in p.choices if d.zero_stage_auto or c.zero_stage == d.zero_stage), key=lambda c: c.total
    )
    what = (
        f"{describe(worst)} needs {_gib(worst.total)} per worker (model states {_gib(worst.model_states)}"
        + (f" + offloaded {_gib(worst.offloaded)}" if worst.offloaded and not d.use_gpu else "")
        + f", activations {_gib(worst.activations)}"
        + (f" + {_gib(worst.retained)} kept by the allocator" if worst.retained else "")
        + f", runtime {_gib(worst.runtime)}) but a worker has "
        f"{_gib(int(worst.available * HEADROOM))} ({HEADROOM:.0%} of {_gib(worst.available)})"
    )
    better = p.recommended
    if better is not None:
        hint = f"{describe(better)} would fit ({_gib(better.total)})"
    elif any(c.fits_checkpointed for c in p.choices):
        hint = "only activation checkpointing would fit; lower trainer.max_seq_len or micro_batch_size"
    else:
        hint = "no ZeRO stage or offload fits: add workers, memory, or use an adapter method"
    return f"the model does not fit in memory: {what}; {hint}"


def resolved(job: JobConfig, p: Plan) -> JobConfig:
    """The job with its ``auto`` zero_stage / micro_batch_size replaced by the planner's choice."""
    c = requested(job, p)
    d, t = job.distributed, job.trainer
    if c is None or not (d.zero_stage_auto or t.micro_batch_size_auto):
        return job
    update: dict[str, object] = {}
    if d.zero_stage_auto:
        dist = {"zero_stage": c.zero_stage, "zero_stage_auto": False}
        dist |= {"offload_optimizer": c.offload != "none", "offload_params": c.offload == "optimizer+params"}
        update["distributed"] = d.model_copy(update=dist)
    if t.micro_batch_size_auto:
        update["trainer"] = t.model_copy(
            update={"micro_batch_size": c.micro_batch_size, "micro_batch_size_auto": False}
        )
    return job.model_copy(update=update)
