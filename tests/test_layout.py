"""The package layout: imports run one way (front ends -> library -> storage), with no cycle, and stay light."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.support.paths import ROOT

#: Each package's layer: a module may import only from a lower layer, or from its own package.
LAYERS = {
    "index.errors": 0,
    "index.config": 0,
    "index.reading": 1,
    "index.analysis": 2,
    "index.store": 3,
    "index.search": 4,
    "index.answer": 5,
    "index.sources": 5,
    "index.evaluate": 6,
    "bot.settings": 7,
    "bot.loading": 8,
    "bot.serve": 9,  # the HTTP front end (its metrics and health are the Telegram bot's too)
    "bot.telegram": 10,
    "bot.terminal": 11,  # the command line also starts the Telegram bot and the server
}


def _modules() -> dict[str, Path]:
    out = {}
    for package in ("index", "bot"):
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _imports(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Every module's imports of other citebot modules, lazy and TYPE_CHECKING ones included."""
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    child = f"{node.module}.{alias.name}"
                    found.add(child if child in modules else node.module)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
        edges[name] = {m for m in found if m in modules and m != name}
    return edges


def _layer(module: str) -> tuple[str, int]:
    for package, layer in LAYERS.items():
        if module == package or module.startswith(package + "."):
            return package, layer
    raise AssertionError(f"{module} belongs to no layer of LAYERS: add its package there")


def test_every_import_runs_down_the_layers() -> None:
    edges = _imports(_modules())
    upward = []
    for module, targets in edges.items():
        if module in ("index", "bot"):
            continue
        package, layer = _layer(module)
        for target in targets:
            if target in ("index", "bot"):
                continue
            other, other_layer = _layer(target)
            if other != package and other_layer >= layer:
                upward.append(f"{module} -> {target}")
    assert not upward, "imports that run upward or sideways:\n" + "\n".join(sorted(upward))


def test_no_import_cycle() -> None:
    edges = _imports(_modules())
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for module in sorted(edges):
        if module not in state and (cycle := visit(module)):
            raise AssertionError("import cycle: " + " -> ".join(cycle))


def test_importing_the_packages_loads_nothing_heavy() -> None:
    heavy = ["torch", "transformers", "sentence_transformers", "faiss", "telegram", "numpy", "trafilatura"]
    code = f"import sys, index, bot; print(' '.join(m for m in {heavy!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert loaded.stdout.strip() == ""
