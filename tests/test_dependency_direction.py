"""The house has one direction: core <- dataset_tools <- (command line, demo, widgets), no cycles.

Walks every import statement of the source (function-level ones too: a lazy import hides a cycle
from the interpreter, not from a reader) and fails on an import that points up a layer or on a
cycle between modules. Opening napari, the sample data or dataset_tools never imports torch.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: (layer, module prefixes); a module belongs to the first layer whose prefix it starts with
LAYERS = (
    (
        "app",
        (
            "napari_ultramn._widgets",
            "napari_ultramn._reader",
            "napari_ultramn._writer",
            "napari_ultramn.__main__",
            "napari_ultramn._sample_data",
            "napari_ultramn.cli",
            "napari_ultramn.demo",
        ),
    ),
    ("tools", ("dataset_tools",)),
    ("core", ("napari_ultramn",)),
)
RANK = {"core": 0, "tools": 1, "app": 2}


def layer_of(module: str) -> str | None:
    for name, prefixes in LAYERS:
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return name
    return None


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def source_modules() -> dict[str, Path]:
    out = {}
    for pkg in ("napari_ultramn", "dataset_tools"):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            out[module_name(path)] = path
    return out


def imports_of(module: str, path: Path, known: set[str]) -> set[str]:
    """Our modules ``module`` imports (resolved to the deepest known module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names = [f"{base}.{a.name}" for a in node.names] + [base]
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                found.add(name)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = source_modules()
    known = set(modules)
    graph = {m: imports_of(m, p, known) for m, p in modules.items()}
    # a package's __init__ is imported with any of its modules: not an edge of its own making
    return {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in graph.items()}


def test_no_module_imports_a_layer_above_its_own():
    upward = []
    for module, deps in import_graph().items():
        for dep in deps:
            if RANK[layer_of(dep)] > RANK[layer_of(module)]:
                upward.append(f"{module} ({layer_of(module)}) imports {dep} ({layer_of(dep)})")
    assert not upward, "imports pointing up a layer:\n" + "\n".join(sorted(upward))


def test_no_import_cycles():
    graph = import_graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_layers_cover_every_module():
    assert all(layer_of(m) for m in source_modules())


@pytest.mark.parametrize(
    "statement",
    [
        "import napari_ultramn, napari_ultramn._sample_data, napari_ultramn._reader, napari_ultramn._writer",
        "import pkgutil, importlib, dataset_tools; [importlib.import_module(m.name) for m in "
        "pkgutil.walk_packages(dataset_tools.__path__, 'dataset_tools.')]",
    ],
)
def test_opening_the_plugin_or_the_data_tools_never_imports_torch(statement):
    code = f"import sys; {statement}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("False")
