"""The import graph of the code (every import, also those inside functions): no circle, and the
floors hold (client, server, eval -> retriever -> indexes; inside indexes, builder and search ->
storage -> codec -> the shared root modules)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("indexes", "retriever", "server", "client", "eval")


def module_of(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    """module -> the project modules it imports (a package import counts as its __init__)."""
    modules = {module_of(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
                targets = [f"{base}.{a.name}" for a in node.names] + [base]
            for t in targets:
                while t and t not in modules:
                    t = t.rsplit(".", 1)[0] if "." in t else ""
                if t and t != name and not modules[t].name == "__init__.py":
                    found.add(t)
        graph[name] = found
    return graph


def test_no_import_circle():
    graph, state, stack = imports(), {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for n in graph[m]:
            if state.get(n) == "open":
                raise AssertionError("import circle: " + " -> ".join(stack[stack.index(n):] + [n]))
            if n not in state:
                visit(n)
        stack.pop()
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_every_import_points_down():
    order = {"indexes": 0, "retriever": 1, "eval": 2, "server": 2, "client": 3}
    inside = {"codec": 1, "storage": 2, "builder": 3, "search": 3}        # indexes' root modules: 0
    for m, targets in imports().items():
        for t in targets:
            a, b = m.split(".")[0], t.split(".")[0]
            allowed = order[b] < order[a] or a == b or (a, b) == ("client", "server")   # the shared schemas
            assert allowed, f"{m} imports {t}: an arrow up"
            if a == b == "indexes":
                la = inside.get(m.split(".")[1], 0) if m.count(".") >= 2 else 0
                lb = inside.get(t.split(".")[1], 0) if t.count(".") >= 2 else 0
                assert lb < la or m.split(".")[:2] == t.split(".")[:2], f"{m} imports {t}: an arrow up or across"
