"""The full path's time to first step, phase by phase, from the run's timestamps."""

from __future__ import annotations

from tuneforge.bench.full_path import phase_seconds
from tuneforge.distributed.runner import worker_phases


def test_phase_seconds_from_timestamps() -> None:
    stamps = {
        "command": 100.0,
        "run_start": 103.0,
        "ray_start": 104.0,
        "ray_ready": 108.0,
        "data_ready": 109.0,
        "fit_start": 109.5,
        "end": 140.0,
    }
    stamps |= worker_phases(
        {
            "phase_worker_start_unix": 120.0,
            "phase_tokenizer_unix": 120.5,
            "phase_model_unix": 121.0,
            "phase_engine_unix": 123.0,
            "first_step_unix": 125.0,
            "eval_loss": 1.0,
        }
    )
    s = phase_seconds(stamps)
    assert s["Ray start"] == 4.0 and s["worker group start"] == 10.5 and s["engine (DeepSpeed)"] == 2.0
    assert s["first batch + first step"] == 2.0 and s["to first step"] == 25.0 and s["to end"] == 40.0


def test_missing_timestamps_are_none() -> None:
    s = phase_seconds({"command": 1.0, "run_start": 2.0})
    assert s["imports and set-up"] == 1.0 and s["Ray start"] is None and s["to first step"] is None
