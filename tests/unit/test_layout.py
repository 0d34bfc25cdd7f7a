"""Guards for the fixed layout: ``platform/`` is a source root, never a package."""

from __future__ import annotations

import importlib
import platform
import subprocess
import sys
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_platform_init_does_not_exist():
    assert not (REPO / "platform" / "__init__.py").exists(), "platform/__init__.py would shadow the stdlib"


def test_stdlib_platform_is_not_shadowed_from_repo_root():
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    assert Path(platform.__file__).resolve().parent == stdlib
    # Ray puts the job's working dir first on sys.path: the same must hold from the repo root.
    code = "import platform, sys; print(platform.__file__); platform.system()"
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(REPO)},
    )
    assert Path(out.stdout.strip()).resolve().parent == stdlib


def test_top_level_layout():
    for name in (
        "pyproject.toml",
        "README.md",
        "Makefile",
        "platform/tuneforge",
        "jobs",
        "cluster",
        "tests",
        "docs",
        ".ci/run",
    ):
        assert (REPO / name).exists(), name


def test_building_blocks_do_not_import_ray():
    """data/, models/, training/, config/ and tracking/ must unit-test without a cluster.

    The rule itself (which unit may import Ray, and how) is checked statically, edge by edge, by
    ``test_imports.py``; this run-time check also catches Ray pulled in by a third-party import.
    """
    blocks = [
        "tuneforge.config",
        "tuneforge.data",
        "tuneforge.models.base",
        "tuneforge.models.io",
        "tuneforge.training.loop",
        "tuneforge.training.checkpoint",
        "tuneforge.tracking",
    ]
    code = (
        "import importlib, sys\n"
        f"for m in {blocks!r}: importlib.import_module(m)\n"
        "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_package_importable():
    assert importlib.import_module("tuneforge").__version__
