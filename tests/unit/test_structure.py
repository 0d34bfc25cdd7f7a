"""Guards for the shape of the code (issue 13): long modules say why, and no test hides a broken import.

* A module of ``platform/tuneforge`` over 300 lines says why at its top: its module docstring
  mentions "300 lines" (the house phrasing: "Over 300 lines on purpose: ...", "About 300 lines on
  purpose: ...", "Just over 300 lines because ...").
* ``pytest.importorskip`` never guards one of tuneforge's own modules: a broken import would turn
  into a skip instead of a failure. It is for optional third-party packages only.

Both read the files (``ast``), nothing is imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PKG = REPO / "platform" / "tuneforge"
TESTS = REPO / "tests"
MAX_LINES = 300


def _modules() -> list[Path]:
    return sorted(p for p in PKG.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_module_over_300_lines_says_why_at_its_top() -> None:
    unexplained = []
    for path in _modules():
        text = path.read_text(encoding="utf-8")
        lines = len(text.splitlines())
        if lines <= MAX_LINES:
            continue
        docstring = ast.get_docstring(ast.parse(text, filename=str(path))) or ""
        if "300 lines" not in docstring:
            unexplained.append(f"{path.relative_to(REPO)} ({lines} lines)")
    assert unexplained == [], (
        "modules over 300 lines must say why in their module docstring "
        "('Over 300 lines on purpose: ...'), or be split:\n" + "\n".join(unexplained)
    )


def _importorskip_targets(tree: ast.AST) -> list[tuple[int, str]]:
    """``(line, module name)`` of every ``importorskip(...)`` call whose module is a string literal."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        if name != "importorskip":
            continue
        args = [*node.args[:1], *(k.value for k in node.keywords if k.arg == "modname")]
        found += [
            (node.lineno, a.value) for a in args if isinstance(a, ast.Constant) and isinstance(a.value, str)
        ]
    return found


def test_importorskip_never_guards_tuneforge_modules() -> None:
    offenders = []
    for path in sorted(TESTS.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        offenders += [
            f"{path.relative_to(REPO)}:{line}: importorskip({module!r})"
            for line, module in _importorskip_targets(tree)
            if module == "tuneforge" or module.startswith("tuneforge.")
        ]
    assert offenders == [], (
        "import tuneforge's own modules directly (a broken import must fail):\n" + "\n".join(offenders)
    )


def test_the_importorskip_scan_sees_every_spelling() -> None:
    """The scan itself: attribute and bare calls, positional and keyword module names."""
    src = (
        "import pytest\nfrom pytest import importorskip\n"
        "pytest.importorskip('tuneforge.data')\nimportorskip(modname='tuneforge')\n"
        "pytest.importorskip('matplotlib', reason='optional')\n"
    )
    assert _importorskip_targets(ast.parse(src)) == [
        (3, "tuneforge.data"),
        (4, "tuneforge"),
        (5, "matplotlib"),
    ]
