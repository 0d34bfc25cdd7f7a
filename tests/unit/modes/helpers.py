"""What the per-mode tests share: build a mode on small inputs, write them, read a conversation's turns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tuneforge.modes import BuildOptions, get_mode

SHARED = Path(__file__).resolve().parents[4] / "shared" / "data"
needs_shared = pytest.mark.skipif(not SHARED.exists(), reason="../shared/data is not present")


def build(mode: str, sources: list[str], **options: str) -> tuple[list, BuildOptions]:
    opts = BuildOptions(seed=1, options=dict(options))
    return list(get_mode(mode).build(sources, opts)), opts


def write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


def jsonl(path: Path, rows: list[dict]) -> str:
    return write(path, "".join(json.dumps(r) + "\n" for r in rows))


def turns(conv) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in conv.messages]
