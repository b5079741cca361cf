"""The library's imports run one way: public layer -> autograd -> back-ends -> foundation, with no cycle.

Parsed with ``ast`` (nothing is imported). Layers, from the top:

- public: ``focalkit`` (its ``__init__``), ``functional``, ``nn``, ``imbalance``, ``adaptive``
- autograd: ``_autograd``
- back-ends: ``backends`` and its sub-packages
- foundation: ``errors``, ``semantics``, ``value_checks``, ``gradient_mode``, ``_checks``, ``_targets``, ``reference``

A module may import its own layer or a lower one. The JAX and Keras front-ends import only ``errors`` and
``semantics`` of the library (and themselves), so they work without PyTorch.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "focalkit"

LAYERS = {
    "public": 3,
    "autograd": 2,
    "backends": 1,
    "foundation": 0,
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "focalkit":
        return None
    if len(parts) == 1:
        return "public"
    head = parts[1]
    if head in ("functional", "nn", "imbalance", "adaptive"):
        return "public"
    if head == "_autograd":
        return "autograd"
    if head == "backends":
        return "backends"
    if head in ("errors", "semantics", "value_checks", "gradient_mode", "_checks", "_targets", "reference"):
        return "foundation"
    if head in ("jax", "keras"):
        return "frontend"
    raise AssertionError(f"{module}: module in no layer; add it to the layer table of this test")


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every import of a focalkit module in the file."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            # "from . import x" / "from .backends import cpu" may name sub-modules
            found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names
                      if (SRC / Path(*f"{target}.{alias.name}".split("."))).exists()
                      or (SRC / Path(*f"{target}.{alias.name}".split("."))).with_suffix(".py").exists()]
    return [(line, name) for line, name in found if name.split(".")[0] == "focalkit"]


def _library_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_imports_run_from_the_public_layer_down():
    problems = []
    for path in _library_files():
        importer = _module_name(path)
        layer = _layer(importer)
        for line, imported in _imports(path):
            target = _layer(imported)
            if layer == "frontend":
                allowed = imported.startswith((f"focalkit.{importer.split('.')[1]}", "focalkit.errors",
                                               "focalkit.semantics")) or imported == "focalkit"
                if not allowed:
                    problems.append(f"{path.relative_to(SRC)}:{line}: front-end imports {imported}")
            elif target == "frontend":
                problems.append(f"{path.relative_to(SRC)}:{line}: {importer} imports the front-end {imported}")
            elif imported != "focalkit" and LAYERS[target] > LAYERS[layer]:
                problems.append(f"{path.relative_to(SRC)}:{line}: {layer} module {importer} imports {target} module {imported}")
    assert not problems, "\n".join(problems)


def test_no_import_cycle_between_library_modules():
    graph: dict[str, set[str]] = {}
    modules = {_module_name(p) for p in _library_files()}
    for path in _library_files():
        name = _module_name(path)
        graph[name] = set()
        for _, imported in _imports(path):
            while imported and imported not in modules:  # "from focalkit.x import name" -> the module focalkit.x
                imported = imported.rpartition(".")[0]
            if imported and imported != name and imported != "focalkit":
                graph[name].add(imported)
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_the_checker_sees_an_upward_import(tmp_path):
    """The layer test itself can fail: a back-end importing the public layer is reported."""
    fake_src = tmp_path / "src"
    (fake_src / "focalkit" / "backends").mkdir(parents=True)
    bad = fake_src / "focalkit" / "backends" / "bad.py"
    bad.write_text("from ..functional import sigmoid_focal_loss\n")
    globals_backup = SRC
    try:
        globals()["SRC"] = fake_src
        assert _imports(bad) == [(1, "focalkit.functional")]
        assert _layer("focalkit.functional") == "public" and _layer("focalkit.backends.bad") == "backends"
        assert LAYERS["public"] > LAYERS["backends"]
    finally:
        globals()["SRC"] = globals_backup
