"""The shape of the code (issue 14): no import circle, short functions and modules, and no private
name used across modules. Recipe scripts aside; argument parsers may be long lists of flags."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FILES = sorted([*(ROOT / "cmaudio").rglob("*.py"), *(ROOT / "demo").rglob("*.py")])
MAX_FUNCTION_LINES = 80
MAX_MODULE_LINES = 500


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


def resolve(path: Path, node: ast.ImportFrom) -> str:
    """The absolute module an ImportFrom names."""
    if not node.level:
        return node.module or ""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join([*base, *([node.module] if node.module else [])])


def type_only(tree: ast.Module) -> set[int]:
    """ids of the nodes inside ``if TYPE_CHECKING:`` blocks (imports for annotations never run)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            out.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return out


def imports(path: Path) -> set[str]:
    """Project modules imported anywhere in a file (top level or inside functions), type-only
    imports aside."""
    names = {module_name(p) for p in FILES}
    out = set()
    tree = parse(path)
    skip = type_only(tree)
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom):
            mod = resolve(path, node)
            for alias in node.names:
                full = f"{mod}.{alias.name}"
                out.add(full if full in names else mod)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {m for m in out if m in names}


def argument_parser(node: ast.FunctionDef) -> bool:
    """A function that is mostly add_argument calls (a CLI's flag list)."""
    calls = [n for n in ast.walk(node) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)]
    flags = sum(c.func.attr == "add_argument" for c in calls)
    return flags >= 8


def test_no_import_circle():
    graph = {module_name(p): imports(p) - {module_name(p)} for p in FILES}
    # A package's __init__ importing its own modules is how packages work, not a circle.
    for mod, deps in graph.items():
        graph[mod] = {d for d in deps if not mod.startswith(d + ".") or d == "cmaudio"} - {"cmaudio"}
    seen, stack, circles = set(), [], []

    def visit(m):
        if m in stack:
            circles.append(stack[stack.index(m) :] + [m])
            return
        if m in seen:
            return
        seen.add(m)
        stack.append(m)
        for d in sorted(graph.get(m, ())):
            visit(d)
        stack.pop()

    for m in sorted(graph):
        visit(m)
    assert not circles, " ; ".join(" -> ".join(c) for c in circles)


def test_no_long_function():
    long = []
    for path in FILES:
        for node in ast.walk(parse(path)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES and not argument_parser(node):
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({n} lines)")
    assert not long, "\n".join(long)


def test_no_long_module():
    long = [f"{p.relative_to(ROOT)} ({n})" for p in FILES if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES]
    assert not long, "\n".join(long)


def private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def test_no_private_name_across_modules():
    """No `from x import _name`, no `module._name`, no `other_object._name` (self and cls aside)."""
    found = []
    for path in FILES:
        where = path.relative_to(ROOT)
        for node in ast.walk(parse(path)):
            if isinstance(node, ast.ImportFrom):
                found += [f"{where}:{node.lineno} imports {a.name}" for a in node.names if private(a.name)]
            elif isinstance(node, ast.Attribute) and private(node.attr):
                base = node.value
                if isinstance(base, ast.Name) and base.id in ("self", "cls"):
                    continue
                if isinstance(base, ast.Call) and isinstance(base.func, ast.Name) and base.func.id == "super":
                    continue
                found.append(f"{where}:{node.lineno} uses .{node.attr}")
    assert not found, "\n".join(found)


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_module_parses(path):
    parse(path)
