"""The package's layers run one way: no import cycle, and the core never imports its front ends."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "georef"


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports_of(path: Path, name: str, known: set[str]) -> set[str]:
    """Every module ``name`` imports, at module level or inside functions (``from a import b``: a.b if a module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in known else base)
    return found


def graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: imports_of(path, name, known) for name, path in modules.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """A cycle among the keys of ``edges`` (as a list of modules), or None."""
    state: dict[str, int] = {}  # 1 visiting, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in edges:
                continue
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycle_among_georef_modules():
    assert find_cycle(graph()) is None


def _is_cli(name: str) -> bool:
    """The command line: georef.cli and ``python -m georef``."""
    return name in ("georef.cli", "georef.__main__") or name.startswith("georef.cli.")


def test_the_core_imports_none_of_its_front_ends():
    offending = {
        name: sorted(i for i in imported if i.split(".")[0] in ("training", "qgis_plugin", "click") or _is_cli(i))
        for name, imported in graph().items() if not _is_cli(name)
    }
    assert {k: v for k, v in offending.items() if v} == {}


def test_the_plugin_has_no_import_cycle_either():
    folder = REPO / "qgis_plugin" / "georef_plugin"
    modules = {f"georef_plugin.{p.stem}" if p.stem != "__init__" else "georef_plugin": p for p in folder.glob("*.py")}
    edges = {name: imports_of(path, name, set(modules)) for name, path in modules.items()}
    assert find_cycle(edges) is None
