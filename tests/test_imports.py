"""The import graph of the package: no cycles, layers that only import downward, every module
importable on its own."""

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "brainuad"

TIERS = (
    ("errors", "version", "image_range", "padding", "checks", "digest"),
    ("atomic", "lock", "cores", "config"),
    ("weights", "noise", "nn", "data"),
    ("preprocess", "methods"),
    ("run_directory",),
    ("evaluate",),
    ("training_check",),
    ("train", "predict"),
    ("demo", "experiment", ""),  # "": the package's own __init__ (its lazy load_detector)
    ("cli",),
    ("__main__",),
)
"""The layers, lowest first: a module imports modules of its own part (e.g. evaluate.engine ->
evaluate.rules) or of a lower layer, never of its layer or above."""


def module_files() -> dict[str, Path]:
    files = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        files[name] = path
    return files


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _imported_names(tree: ast.Module, module: str, is_package: bool) -> list[str]:
    """Every module an ``import`` statement names, at any depth, except under ``if TYPE_CHECKING:``."""
    package = module if is_package else module.rpartition(".")[0]
    names = []
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names += [base, *(f"{base}.{alias.name}" for alias in node.names)]
        stack.extend(ast.iter_child_nodes(node))
    return names


def import_graph() -> dict[str, set[str]]:
    """Module -> the brainuad modules it imports (a ``from pkg import name`` counts as importing
    ``pkg.name`` when that is a module, else ``pkg``)."""
    modules = module_files()
    graph = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        targets = {_resolve(name, modules) for name in _imported_names(tree, module, path.name == "__init__.py")
                   if name == PACKAGE or name.startswith(PACKAGE + ".")}
        graph[module] = {target for target in targets if target and target != module}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
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

    for node in graph:
        if node not in index:
            visit(node)
    return found


def part(module: str) -> str:
    """The top-level part of a module: ``brainuad.evaluate.engine`` -> ``evaluate``."""
    return module.split(".")[1] if "." in module else ""


def tier(module: str) -> int:
    return next(level for level, parts in enumerate(TIERS) if part(module) in parts)


def test_every_module_has_a_layer():
    assert sorted(module for module in import_graph() if not any(part(module) in parts for parts in TIERS)) == []


def test_the_import_graph_has_no_cycles():
    assert cycles(import_graph()) == []


def test_modules_import_only_their_own_part_or_lower_layers():
    upward = sorted(f"{module} -> {target}" for module, targets in import_graph().items() for target in targets
                    if part(target) != part(module) and tier(target) >= tier(module))
    assert upward == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_every_module_imports_on_its_own():
    """Each module imported first, in a process where no other brainuad module is loaded yet (an
    import cycle at module level fails this for some order)."""
    script = (
        "import importlib, sys, traceback\n"
        "failed = []\n"
        f"for name in {sorted(name for name in module_files() if not name.endswith('__main__'))!r}:\n"
        "    for loaded in [m for m in sys.modules if m == 'brainuad' or m.startswith('brainuad.')]:\n"
        "        del sys.modules[loaded]\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception:\n"
        "        failed.append(name + ': ' + traceback.format_exc(limit=1).strip().splitlines()[-1])\n"
        "print('\\n'.join(failed))\n"
        "sys.exit(1 if failed else 0)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
