"""Guards for the shape of the code (issue 13): long modules say why, and no test hides a broken import.

* A module of ``platform/tuneforge`` over 300 lines says why at its top: its module docstring
  mentions "300 lines" (the house phrasing: "Over 300 lines on purpose: ...", "About 300 lines on
  purpose: ...", "Just over 300 lines because ...").
* ``pytest.importorskip`` never guards one of tuneforge's own modules: a broken import would turn
  into a skip instead of a failure. It is for optional third-party packages only.
* Unit tests mirror the tree: ``tests/unit/<a>/<b>/test_<m>.py`` tests ``platform/tuneforge/<a>/<b>/<m>.py``
  (or the package ``<m>/``; a test of a package's ``__init__`` is named after the package), and every
  folder of tests is a package, so two ``test_encode.py`` in different folders do not clash.

All read the files (``ast``) or only their names, nothing is imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PKG = REPO / "platform" / "tuneforge"
TESTS = REPO / "tests"
UNIT = TESTS / "unit"
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


# The cross-cutting unit tests, about the repository as a whole rather than one module: they stay at the
# top of tests/unit and are named for what they check. Everything else mirrors platform/tuneforge.
CROSS_CUTTING = {
    "test_bad_input_catalog.py",  # every bad input, across config, data, model, run dir, tracking
    "test_imports.py",  # the module graph against docs/architecture.md
    "test_jobs.py",  # the jobs/ scripts and configs
    "test_layout.py",  # the fixed repository layout
    "test_preference_doc.py",  # docs/preference.md stays true
    "test_readme_commands.py",  # README's commands run
    "test_security.py",  # secrets, pickles, remote code, across the package
    "test_shipped_configs.py",  # every config under jobs/ loads
    "test_structure.py",  # this file
    "test_typecheck.py",  # mypy over the package
}


def _mirror_problem(rel: Path, pkg: Path = PKG) -> str | None:
    """Why the unit test at ``rel`` (relative to tests/unit) does not mirror a module of ``pkg``, or None."""
    if rel.parent == Path(".") and rel.name in CROSS_CUTTING:
        return None
    name = rel.stem.removeprefix("test_")
    where = pkg.joinpath(*rel.parent.parts)
    if (where / f"{name}.py").is_file() or (where / name / "__init__.py").is_file():
        return None
    if rel.parent.parts and name == rel.parent.name and (where / "__init__.py").is_file():
        return None  # tests the package's own __init__
    looked = (where / f"{name}.py").relative_to(pkg.parent.parent)
    return f"tests/unit/{rel.as_posix()}: no {looked} (nor a package {name}/)"


def test_unit_tests_mirror_the_package_tree() -> None:
    tests = sorted(p.relative_to(UNIT) for p in UNIT.rglob("test_*.py") if "__pycache__" not in p.parts)
    offenders = [problem for rel in tests if (problem := _mirror_problem(rel))]
    assert offenders == [], (
        "a unit test is tests/unit/<a>/<b>/test_<m>.py for platform/tuneforge/<a>/<b>/<m>.py: move or "
        "rename these (or split them by module), or list a cross-cutting one in CROSS_CUTTING:\n"
        + "\n".join(offenders)
    )


def test_every_unit_test_folder_is_a_package() -> None:
    """pytest names a test module by its package path; without __init__.py two test_encode.py clash."""
    folders = sorted({p.parent for p in UNIT.rglob("test_*.py") if "__pycache__" not in p.parts})
    missing = [str(d.relative_to(REPO)) for d in folders if not (d / "__init__.py").is_file()]
    assert missing == [], "add an __init__.py to these test folders:\n" + "\n".join(missing)


def test_the_mirror_check_accepts_modules_packages_and_package_inits() -> None:
    """The check itself: a module, a subpackage, a package's own __init__, the cross-cutting list."""
    ok = ["data/preference/test_encode.py", "data/test_formats.py", "modes/test_modes.py", "test_paths.py",
          "test_security.py"]  # fmt: skip
    assert [_mirror_problem(Path(p)) for p in ok] == [None] * len(ok)
    bad = ["data/test_preference_encode.py", "modes/test_compile.py", "nope/test_nope.py", "test_other.py"]
    problems = [_mirror_problem(Path(p)) for p in bad]
    assert all(problems), problems
    assert problems[0] == (
        "tests/unit/data/test_preference_encode.py: no platform/tuneforge/data/preference_encode.py "
        "(nor a package preference_encode/)"
    )
