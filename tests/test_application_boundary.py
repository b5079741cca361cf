"""The application (``src/focalkit_app``: the ``focalkit`` command, demo, benchmark runner) uses only the library's
public API, and the library never imports the application.

The check parses the source files with :mod:`ast` (nothing is imported, so it runs even when a dependency is
missing): every ``import`` / ``from ... import`` anywhere in a file (function bodies and ``TYPE_CHECKING`` blocks
included, relative imports resolved against the file's package) and every ``importlib.import_module("...")`` /
``__import__("...")`` call with a literal module name.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
LIBRARY = "focalkit"
APPLICATION = "focalkit_app"

# The library's public modules: the only ones the application may import.
PUBLIC_MODULES = frozenset({
    "focalkit",
    "focalkit.errors",
    "focalkit.semantics",
    "focalkit.reference",
    "focalkit.adaptive",
    "focalkit.functional",
    "focalkit.nn",
    "focalkit.backends",
})

# What ``from focalkit import NAME`` may name: the top-level public names and the public submodules.
PUBLIC_TOP_LEVEL = frozenset({
    "sigmoid_focal_loss", "softmax_focal_loss", "binary_focal_loss", "sigmoid_focal_loss_star",
    "class_balanced_weights", "prior_bias", "init_prior_bias_", "set_value_checks", "get_value_checks",
    "FocalLoss", "SigmoidFocalLoss", "SoftmaxFocalLoss", "BinaryFocalLoss", "SigmoidFocalLossStar",
    "FocalKitError", "InvalidArgumentError", "InvalidTypeError", "__version__",
}) | {m.rpartition(".")[2] for m in PUBLIC_MODULES if m != "focalkit"}


def _module_name(path: Path, src: Path) -> tuple[str, bool]:
    """Dotted module name of ``path`` (a file under ``src``) and whether it is a package's ``__init__``."""
    parts = list(path.relative_to(src).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts.pop()
    return ".".join(parts), is_package


def _in_library(name: str) -> bool:
    return name == LIBRARY or name.startswith(LIBRARY + ".")


def _is_private(part: str) -> bool:
    return part.startswith("_") and not (part.startswith("__") and part.endswith("__"))


def _is_library_module(dotted: str, src: Path) -> bool:
    """Whether ``dotted`` (under ``focalkit``) is a module or package in the source tree (not an attribute)."""
    path = src.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _resolve_relative(module: str | None, level: int, current: str, is_package: bool) -> str | None:
    """Absolute target of ``from <level dots><module> import ...`` in module ``current``; None if it climbs out."""
    package = current.split(".") if is_package else current.split(".")[:-1]
    if level - 1 >= len(package):
        return None
    base = package[: len(package) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def _literal_import_calls(tree: ast.AST):
    """``importlib.import_module("x")``, ``import_module("x")`` and ``__import__("x")`` with a literal, relative
    names (``import_module(".x", package)``) left out."""
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and node.args):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
        arg = node.args[0]
        if name in ("import_module", "__import__") and isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            if not arg.value.startswith("."):
                yield node.lineno, arg.value


def _check_library_module(dotted: str) -> str | None:
    """Why importing module ``dotted`` (inside focalkit) breaks the boundary, or None."""
    private = [p for p in dotted.split(".") if _is_private(p)]
    if private:
        return f"{dotted} is private (component {private[0]!r} starts with '_')"
    if dotted not in PUBLIC_MODULES:
        return f"{dotted} is not a public module of focalkit (public: {', '.join(sorted(PUBLIC_MODULES))})"
    return None


def application_violations(source: str, filename: str, module: str, is_package: bool = False,
                           src: Path = SRC) -> list[str]:
    """Every import in ``source`` (module ``module`` of the application) that leaves the library's public API,
    as ``filename:line: message``."""
    tree = ast.parse(source, filename=filename)
    out: list[str] = []

    def report(line: int, message: str) -> None:
        out.append(f"{filename}:{line}: {message}")

    def check_module(line: int, target: str, statement: str) -> None:
        if _in_library(target):
            why = _check_library_module(target)
            if why:
                report(line, f"{statement}: {why}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                check_module(node.lineno, alias.name, f"import {alias.name}")
        elif isinstance(node, ast.ImportFrom):
            dots = "." * node.level
            statement = f"from {dots}{node.module or ''} import {', '.join(a.name for a in node.names)}"
            if node.level:
                target = _resolve_relative(node.module, node.level, module, is_package)
                if target is None or not (target == APPLICATION or target.startswith(APPLICATION + ".")):
                    report(node.lineno, f"{statement}: relative import climbs out of {APPLICATION}")
                    continue
            else:
                target = node.module or ""
            if not _in_library(target):
                continue
            why = _check_library_module(target)
            if why:
                report(node.lineno, f"{statement}: {why}")
                continue
            for alias in node.names:
                name = alias.name
                if name == "*":
                    continue
                if _is_private(name):
                    report(node.lineno, f"{statement}: {target}.{name} is private (starts with '_')")
                elif target == LIBRARY and name not in PUBLIC_TOP_LEVEL:
                    report(node.lineno, f"{statement}: {name!r} is not a public top-level name of focalkit")
                elif target != LIBRARY and _is_library_module(f"{target}.{name}", src):
                    why = _check_library_module(f"{target}.{name}")
                    if why:
                        report(node.lineno, f"{statement}: {why}")
    for line, target in _literal_import_calls(tree):
        check_module(line, target, f"import_module({target!r})")
    return out


def library_violations(source: str, filename: str, module: str, is_package: bool = False) -> list[str]:
    """Every import in ``source`` (module ``module`` of the library) of the application, as ``filename:line: ...``."""
    tree = ast.parse(source, filename=filename)
    out: list[str] = []

    def is_app(name: str) -> bool:
        return name == APPLICATION or name.startswith(APPLICATION + ".")

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [f"{filename}:{node.lineno}: import {a.name}" for a in node.names if is_app(a.name)]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                target = _resolve_relative(node.module, node.level, module, is_package)
                if target is None:
                    out.append(f"{filename}:{node.lineno}: relative import climbs out of {LIBRARY}")
                    continue
            else:
                target = node.module or ""
            if is_app(target):
                out.append(f"{filename}:{node.lineno}: from {target} import ...")
    out += [f"{filename}:{line}: import_module({t!r})" for line, t in _literal_import_calls(tree) if is_app(t)]
    return out


def _package_files(package: str) -> list[Path]:
    files = sorted((SRC / package).rglob("*.py"))
    assert files, f"no Python files under {SRC / package}"
    return files


def test_application_imports_only_the_public_api():
    violations: list[str] = []
    for path in _package_files(APPLICATION):
        module, is_package = _module_name(path, SRC)
        violations += application_violations(path.read_text(encoding="utf-8"), str(path.relative_to(SRC.parent)),
                                             module, is_package)
    assert not violations, "the application imports focalkit outside its public API:\n" + "\n".join(violations)


def test_library_does_not_import_the_application():
    violations: list[str] = []
    for path in _package_files(LIBRARY):
        module, is_package = _module_name(path, SRC)
        violations += library_violations(path.read_text(encoding="utf-8"), str(path.relative_to(SRC.parent)),
                                         module, is_package)
    assert not violations, "the library imports the application:\n" + "\n".join(violations)


def test_checker_reports_private_and_internal_imports():
    bad = (
        "from focalkit._errors import x\n"
        "def f():\n"
        "    from focalkit.kernels import cpu_lib\n"
        "import focalkit.kernels.cpu_lib\n"
        "from focalkit import _binary_focal_loss, kernels\n"
        "from focalkit.backends import _impl\n"
        "from ... import focalkit\n"
        "import importlib\n"
        "importlib.import_module('focalkit._sigmoid_focal_loss')\n"
    )
    found = application_violations(bad, "bad.py", "focalkit_app.cli.main")
    lines = sorted(int(v.split(":")[1]) for v in found)
    assert lines == [1, 3, 4, 5, 5, 6, 7, 9], found
    assert any(v.startswith("bad.py:1:") and "focalkit._errors" in v for v in found), found
    assert any(v.startswith("bad.py:3:") and "focalkit.kernels" in v for v in found), found


def test_checker_accepts_the_public_api():
    good = (
        "import focalkit\n"
        "import focalkit.reference\n"
        "from focalkit.reference import sigmoid_focal_loss\n"
        "from focalkit import adaptive, sigmoid_focal_loss, InvalidArgumentError, __version__\n"
        "from focalkit.errors import argument_error\n"
        "from focalkit.semantics import check_gamma\n"
        "from focalkit.backends import cpu_kernel_isa, available_backends, ENV_VAR\n"
        "from . import curves\n"
        "from ..bench import _impls\n"
        "from focalkit_app.bench._runner import metadata\n"
        "import torch, numpy\n"
        "import importlib\n"
        "importlib.import_module('focalkit_app.demo.cli')\n"
    )
    assert application_violations(good, "good.py", "focalkit_app.cli.main") == []


def test_library_checker_reports_application_imports():
    bad = "import focalkit_app\nfrom focalkit_app.cli import main\nfrom . import errors\n"
    found = library_violations(bad, "lib.py", "focalkit.functional")
    assert [int(v.split(":")[1]) for v in found] == [1, 2], found
