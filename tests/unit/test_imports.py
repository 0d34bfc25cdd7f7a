"""Static import rules: the package table of docs/architecture.md, edge by edge, and no import cycles.

Every ``.py`` under ``platform/tuneforge`` is parsed (nothing is imported): each import of
``tuneforge.*`` or ``ray`` is collected, at module level, under ``if TYPE_CHECKING:`` and inside
functions (lazy imports count: they run too, only later), relative ones resolved. Then

* each import between two units (a package such as ``data/``, or a top-level module such as
  ``paths.py``) must be allowed by the "Packages and import rules" table of docs/architecture.md,
  which this test parses, so the document and the rule cannot drift apart; its "Ray" column says
  whether a unit may import Ray (``yes``), only inside functions (``lazily``) or not at all (``no``);
* the table is tight: every allowed edge is used, every unit has a row, and the allowed edges
  between units form no cycle;
* the module graph (module -> module, all imports, lazy ones included) has no cycle.

An edge goes to the module an import names: ``from tuneforge.data import x`` is an edge to
``tuneforge.data`` (its ``__init__``) unless ``x`` is a submodule, then to ``tuneforge.data.x``.
That the parent packages' ``__init__`` run first is not an edge: every package's ``__init__``
re-exports its submodules, which would make each package a cycle with itself.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "platform"
PKG = SRC / "tuneforge"
DOC = REPO / "docs" / "architecture.md"
SECTION = "## Packages and import rules"
RAY_RULES = ("yes", "lazily", "no")


@dataclass(frozen=True)
class Import:
    source: str  # importing module, dotted
    target: str  # imported module (tuneforge.*) or "ray..."
    lazy: bool  # inside a function body
    line: int

    def where(self) -> str:
        return f"{module_path(self.source)}:{self.line}"


@cache
def modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package (``__init__`` names its package)."""
    out = {}
    for path in sorted(PKG.rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def module_path(module: str) -> str:
    return str(modules()[module].relative_to(REPO))


def is_package(module: str) -> bool:
    return modules()[module].name == "__init__.py"


def unit_of(module: str) -> str:
    """The table row a module belongs to: ``config`` for ``tuneforge.config.*``, ``paths.py`` for
    ``tuneforge.paths``, ``__init__.py`` for ``tuneforge`` itself."""
    parts = module.split(".")
    if len(parts) == 1:
        return "__init__.py"
    if (PKG / parts[1]).is_dir():
        return parts[1]
    return f"{parts[1]}.py"


def _resolve_relative(module: str, level: int, name: str | None) -> str:
    base = module.split(".")
    if not is_package(module):
        base = base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _import_module_literal(node: ast.Call) -> str | None:
    """``importlib.import_module("tuneforge.x")`` / ``__import__("tuneforge.x")``: the module named."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    if name not in ("import_module", "__import__") or not node.args:
        return None
    arg = node.args[0]
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    if isinstance(arg, ast.JoinedStr):  # an f-string: its literal head is all that can be checked
        head = arg.values[0] if arg.values else None
        if isinstance(head, ast.Constant) and isinstance(head.value, str):
            return head.value.rstrip(".") + ".<dynamic>"
    return None


def _ours(name: str) -> bool:
    top = name.split(".")[0]
    return top in ("tuneforge", "ray")


def _nodes(tree: ast.AST) -> Iterator[tuple[ast.AST, bool]]:
    """Every node with whether it sits inside a function body."""
    todo: list[tuple[ast.AST, bool]] = [(tree, False)]
    while todo:
        node, lazy = todo.pop()
        yield node, lazy
        inner = lazy or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        todo += [(child, inner) for child in ast.iter_child_nodes(node)]


@cache
def imports() -> tuple[Import, ...]:
    """Every import of tuneforge.* or ray in the package, lazy ones included."""
    known = modules()
    found: list[Import] = []
    for module, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node, lazy in _nodes(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve_relative(module, node.level, node.module) if node.level else node.module or ""
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.append(sub if sub in known else base)
            elif isinstance(node, ast.Call) and (literal := _import_module_literal(node)):
                targets = [literal]
            for target in targets:
                if _ours(target):
                    found.append(Import(module, target, lazy, getattr(node, "lineno", 0)))
    return tuple(found)


def target_module(target: str) -> str | None:
    """The tuneforge module an import target is, or None for Ray; unknown names fail the test."""
    if target.split(".")[0] == "ray":
        return None
    known = modules()
    if target in known:
        return target
    parent = target.rpartition(".")[0]  # ``import tuneforge.x.name`` of a non-module: its module
    return parent if parent in known and not target.endswith("<dynamic>") else f"<unknown {target}>"


# -- the table ---------------------------------------------------------------------------------------------


def _cells(row: str) -> list[str]:
    return [c.strip() for c in row.strip().strip("|").split("|")]


@cache
def table() -> tuple[dict[str, set[str]], dict[str, str]]:
    """(unit -> units it may import, unit -> Ray rule), parsed from docs/architecture.md.

    A unit is written `` `data/` `` (a package) or `` `paths.py` `` (a top-level module); in the
    "may import" column the backticked names are the allowed units (prose around them is comment).
    """
    text = DOC.read_text(encoding="utf-8")
    assert SECTION in text, f"{DOC}: no '{SECTION}' section"
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0].splitlines()
    start = next(i for i, ln in enumerate(section) if ln.startswith("|"))
    end = next((i for i in range(start, len(section)) if not section[i].startswith("|")), len(section))
    rows = section[start:end]  # the section's first table
    header = [h.lower() for h in _cells(rows[0])]
    col_unit, col_may, col_ray = header.index("package"), header.index("may import"), header.index("ray")
    allowed: dict[str, set[str]] = {}
    ray: dict[str, str] = {}
    for row in rows[2:]:  # header, then the |---| line
        cells = _cells(row)
        unit = _unit_name(cells[col_unit])
        assert unit not in allowed, f"{DOC}: {unit} has two rows"
        allowed[unit] = {_unit_name(n) for n in re.findall(r"`([^`]+)`", cells[col_may])}
        ray[unit] = cells[col_ray].strip("` ").lower()
        assert ray[unit] in RAY_RULES, f"{DOC}: {unit}: Ray column must be one of {RAY_RULES}"
    return allowed, ray


def _unit_name(cell: str) -> str:
    name = cell.strip().strip("`").strip()
    return name.removesuffix("/")


def units() -> set[str]:
    return {unit_of(m) for m in modules()}


# -- graphs ------------------------------------------------------------------------------------------------


def module_graph() -> dict[str, dict[str, Import]]:
    """module -> {imported module: the first such import}, tuneforge modules only."""
    graph: dict[str, dict[str, Import]] = {m: {} for m in modules()}
    for imp in imports():
        target = target_module(imp.target)
        if target is not None and target != imp.source:
            graph[imp.source].setdefault(target, imp)
    return graph


def find_cycle(graph: dict[str, set[str]] | dict[str, dict[str, Import]]) -> list[str] | None:
    """One cycle ``[a, b, ..., a]`` of a directed graph, or None (iterative DFS, white/grey/black)."""
    colour = dict.fromkeys(graph, 0)
    for start in sorted(graph):
        if colour[start]:
            continue
        stack: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start])))]
        path, colour[start] = [start], 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                path.pop()
                colour[node] = 2
            elif colour.get(child, 2) == 1:
                return path[path.index(child) :] + [child]
            elif colour.get(child, 2) == 0:
                colour[child] = 1
                path.append(child)
                stack.append((child, iter(sorted(graph[child]))))
    return None


# -- tests -------------------------------------------------------------------------------------------------


def test_every_import_is_resolved() -> None:
    """Every tuneforge import names a module that exists (and none is assembled at run time)."""
    unknown = [f"{i.where()}: {i.target}" for i in imports() if "<" in (target_module(i.target) or "")]
    assert not unknown, "imports the checker cannot follow:\n" + "\n".join(unknown)


def test_the_table_has_one_row_per_unit() -> None:
    allowed, _ = table()
    missing = sorted(units() - set(allowed))
    stale = sorted(set(allowed) - units())
    assert not missing, f"{DOC.name}: add a row for {missing} to '{SECTION}'"
    assert not stale, f"{DOC.name}: '{SECTION}' names units that do not exist: {stale}"
    unknown = {u: sorted(v - units()) for u, v in allowed.items() if v - units()}
    assert not unknown, f"{DOC.name}: 'may import' names units that do not exist: {unknown}"


def test_imports_follow_the_table() -> None:
    """Each import between two units is an allowed edge; Ray only where the Ray column says."""
    allowed, ray = table()
    bad = []
    for imp in imports():
        src = unit_of(imp.source)
        target = target_module(imp.target)
        if target is None:  # Ray
            rule = ray.get(src, "no")
            if rule == "no":
                bad.append(f"{imp.where()}: {src} may not import Ray ({imp.target})")
            elif rule == "lazily" and not imp.lazy:
                bad.append(f"{imp.where()}: {src} may import Ray only inside functions ({imp.target})")
            continue
        dst = unit_of(target) if target in modules() else None
        if dst is not None and dst != src and dst not in allowed.get(src, set()):
            kind = "lazily " if imp.lazy else ""
            bad.append(
                f"{imp.where()}: {src} {kind}imports {target}, but {src} may import {sorted(allowed[src])}"
            )
    assert not bad, f"imports that break the table in {DOC.name}:\n" + "\n".join(bad)


def test_the_table_is_tight() -> None:
    """Every allowed edge is used (a rule nobody needs is a door left open), and so is Ray's yes/lazily."""
    allowed, ray = table()
    used: dict[str, set[str]] = {u: set() for u in allowed}
    ray_used: set[str] = set()
    for imp in imports():
        src, target = unit_of(imp.source), target_module(imp.target)
        if target is None:
            ray_used.add(src)
        elif target in modules() and unit_of(target) != src:
            used.setdefault(src, set()).add(unit_of(target))
    unused = {u: sorted(allowed[u] - used[u]) for u in allowed if allowed[u] - used[u]}
    assert not unused, f"{DOC.name}: allowed but never imported (drop them from 'may import'): {unused}"
    unused_ray = sorted(u for u, rule in ray.items() if rule != "no" and u not in ray_used)
    assert not unused_ray, f"{DOC.name}: Ray allowed but never imported (say 'no'): {unused_ray}"


def test_the_units_form_layers() -> None:
    """The allowed edges between units have no cycle: each unit sits on the ones it imports."""
    allowed, _ = table()
    cycle = find_cycle({u: {v for v in deps if v != u} for u, deps in allowed.items()})
    assert cycle is None, f"{DOC.name}: the table allows a cycle between units: {' -> '.join(cycle)}"


def test_no_module_import_cycles() -> None:
    """Module -> module, lazy imports included: no import waits on a module that (indirectly) waits on it."""
    graph = module_graph()
    cycle = find_cycle(graph)
    if cycle is not None:
        steps = [f"{a} -> {b}  ({graph[a][b].where()})" for a, b in zip(cycle, cycle[1:], strict=False)]
        pytest.fail("import cycle:\n  " + "\n  ".join(steps))


def test_nothing_imports_the_cli() -> None:
    """The CLI is the top: no other unit imports it, and no command module imports ``cli.main``."""
    bad = [
        f"{i.where()}: {i.source} imports {i.target}"
        for i in imports()
        if (t := target_module(i.target))
        and t.startswith("tuneforge.cli")
        and (unit_of(i.source) != "cli" or t == "tuneforge.cli.main")
    ]
    assert not bad, "\n".join(bad)


def test_the_checker_sees_lazy_relative_and_dynamic_imports() -> None:
    """The collector itself: function-local, relative and ``import_module`` imports are all edges."""
    found = {(i.source, i.target, i.lazy) for i in imports()}
    assert any(i.lazy for i in imports()), "no lazy import found: the collector misses function bodies"
    assert ("tuneforge.cli.main", "tuneforge.cli._common", False) in found
    assert _resolve_relative("tuneforge.data.encode", 1, "ir") == "tuneforge.data.ir"
    assert _resolve_relative("tuneforge.data", 1, "ir") == "tuneforge.data.ir"  # in an __init__
    assert _resolve_relative("tuneforge.data.formats.openai", 2, None) == "tuneforge.data"
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    tree = ast.parse("def f():\n    importlib.import_module(f'tuneforge.modes.{x}')\n")
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call))
    assert _import_module_literal(call) == "tuneforge.modes.<dynamic>"
