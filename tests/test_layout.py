"""The house's layout holds: no import cycles between modules or between app's packages
(the import-linter contracts in pyproject.toml say which way the arrows point), and
ARCHITECTURE.md's map names every package and module at the top of app/."""

import sys
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent


def cycles(nodes: Iterable[str], edges: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in edges.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in nodes:
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles_between_modules_or_packages() -> None:
    graph = grimp.build_graph("app", cache_dir=None)
    modules = sorted(graph.modules)
    imports = {m: graph.find_modules_directly_imported_by(m) for m in modules}
    assert cycles(modules, imports) == []

    def package(module: str) -> str:
        return ".".join(module.split(".")[:2])

    between: dict[str, set[str]] = defaultdict(set)
    for module, imported in imports.items():
        for other in imported:
            if package(module) != package(other):
                between[package(module)].add(package(other))
    assert cycles(sorted({package(m) for m in modules}), between) == []


def test_the_architecture_map_names_everything_at_the_top_of_app() -> None:
    text = (ROOT / "ARCHITECTURE.md").read_text()
    layers = text[text.index("## The layers") : text.index("## Roles per file")]
    app = ROOT / "app"
    wanted = {f"app/{p.name}" for p in app.iterdir() if (p / "__init__.py").exists()}
    wanted |= {p.name for p in app.glob("*.py") if p.name != "__init__.py"}
    missing = sorted(name for name in wanted if name not in layers)
    assert missing == [], f"ARCHITECTURE.md's map does not mention {missing}"
