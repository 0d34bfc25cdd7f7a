"""Suite-wide settings: offline, quiet, and nothing written outside the test's own dirs.

The DeepSpeed op-build cache is the one exception: it lives in the repo's ignored ``.tuneforge/``
so the ~40 s compile of the shared-memory comm op happens once per checkout, not once per test.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("DS_ACCELERATOR", "cpu")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.2")
os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(REPO / ".tuneforge" / "torch_extensions"))


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """SmolLM2-135M-Instruct as an HF directory, converted from the wheel's GGUF once.

    The conversion lands in the repo's ignored ``.tuneforge/cache/models`` (keyed by the file's
    sha256, like a run's own cache), so a session converts at most once and later sessions reuse it.
    Skips when the wheel is not installed (``make setup`` installs it).
    """
    from tuneforge.models.gguf import SMOLLM2_REF, convert_gguf, resolve_package_file

    try:
        gguf = resolve_package_file(SMOLLM2_REF)
    except FileNotFoundError as exc:
        pytest.skip(f"real model not installed: {exc}")
    return convert_gguf(gguf, REPO / ".tuneforge" / "cache" / "models")
