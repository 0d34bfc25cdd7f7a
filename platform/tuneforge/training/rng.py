"""Each rank's random-number-generator states, saved with a checkpoint and restored on resume.

Dropout masks and any sampling draw from Python's, NumPy's and torch's generators; a resumed run
that re-seeded them would repeat the draws of step 0 instead of continuing the stream. The states
are written as JSON (no pickle): torch's as the bytes of its state tensor.
"""

from __future__ import annotations

import base64
import json
import random
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from numpy.typing import NDArray


def rng_file(rank: int) -> str:
    """Where ``rank``'s RNG state sits inside a checkpoint."""
    return f"tuneforge/rng/rank{rank}.json"


def _b64(t: torch.Tensor) -> str:
    return base64.b64encode(t.numpy().tobytes()).decode()


def _unb64(s: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(s)), dtype=torch.uint8).clone()


def capture() -> dict[str, Any]:
    """This process's RNG states as a JSON-able dict."""
    py_version, py_state, py_gauss = random.getstate()
    # legacy=True (the default) returns MT19937's state as this tuple; the stubs also allow a dict.
    np_state = cast(tuple[str, NDArray[np.uint32], int, int, float], np.random.get_state())
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np_state
    state: dict[str, Any] = {
        "python": [py_version, list(py_state), py_gauss],
        "numpy": [np_name, np_keys.tolist(), int(np_pos), int(np_has_gauss), float(np_gauss)],
        "torch": _b64(torch.get_rng_state()),
    }
    # torch.cuda.is_initialized has no annotations in torch's sources.
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        state["cuda"] = [_b64(s) for s in torch.cuda.get_rng_state_all()]
    return state


def restore(state: dict[str, Any]) -> None:
    """Set this process's RNGs to ``state`` (from :func:`capture`)."""
    v, s, g = state["python"]
    random.setstate((v, tuple(s), g))
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(_unb64(state["torch"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([_unb64(s) for s in state["cuda"]])


def save_rng_state(ckpt_dir: Path, rank: int, state: dict[str, Any] | None = None) -> Path:
    """Write ``state`` (default: the current one) as ``rank``'s RNG file in ``ckpt_dir``."""
    target = ckpt_dir / rng_file(rank)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(state or capture()))
    return target


def load_rng_state(ckpt_dir: Path, rank: int) -> bool:
    """Restore ``rank``'s saved RNG state; False when the checkpoint has none for this rank.

    A run resumed on more ranks than it was saved with has no state for the new ranks; they keep
    their fresh seeding (their data differs from every saved rank's anyway).
    """
    f = ckpt_dir / rng_file(rank)
    if not f.is_file():
        return False
    restore(json.loads(f.read_text()))
    return True
