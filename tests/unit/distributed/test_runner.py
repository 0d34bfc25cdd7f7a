"""Automatic run names: two commands started in the same second never share a run directory."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tuneforge.distributed.runner import _claim_run_name


def test_same_second_names_are_claimed_once_each(tmp_path: Path):
    with ThreadPoolExecutor(8) as pool:
        names = list(pool.map(lambda _: _claim_run_name(tmp_path, "full-20261204-120000"), range(8)))
    assert len(set(names)) == 8
    assert "full-20261204-120000" in names and "full-20261204-120000-8" in names
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)
