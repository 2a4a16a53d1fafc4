"""The source tree's shape: only Kedro's own modules at the top of the package, imports between
packages pointing down the layers (docs/layout.md), no import cycle between modules, and no
function over 40 lines but the declarative ``create_pipeline`` functions."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "mnist_mlops"
KEDRO_FILES = {"__init__", "__main__", "settings", "pipeline_registry", "hooks", "cli"}
# Each package imports only packages of the layers below its own (Kedro's files: each other too).
LAYERS = (
    KEDRO_FILES,
    {"pipelines"},
    {"datasets", "evaluation", "reporting"},
    {"registry"},
    {"serving", "spark", "devservices"},
    {"workspaces"},
    {"config", "runtime"},
)
MAX_FUNCTION_LINES = 40


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _imported(module: str, tree: ast.Module) -> set[str]:
    """The project's modules ``module`` imports when it is imported (its top-level statements:
    an import inside a function runs later and cannot close a cycle)."""
    found = set()
    for statement in tree.body:
        if isinstance(statement, ast.Import):
            found |= {alias.name for alias in statement.names}
        elif isinstance(statement, ast.ImportFrom):
            base = statement.module or ""
            if statement.level:  # relative: from the module's package, then up
                package = module.split(".")
                if MODULES[module].name != "__init__.py":
                    package = package[:-1]
                parts = [*package[: len(package) - statement.level + 1], base]
                base = ".".join(part for part in parts if part)
            for alias in statement.names:
                submodule = f"{base}.{alias.name}"
                found.add(submodule if submodule in MODULES else base)
    return {name for name in found if name in MODULES and name != module}


def _graph() -> dict[str, set[str]]:
    return {m: _imported(m, ast.parse(p.read_text())) for m, p in MODULES.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph``, as the modules along it, or None when there is none."""
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return [*path[path.index(target) :], target]
            if target not in state and (found := visit(target)):
                return found
        state[node] = "done"
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def _package(module: str) -> str:
    """The top-level package of a module (``registry`` for ``mnist_mlops.registry.records``), or
    the module's own name for Kedro's files (``hooks``; ``__init__`` for the package itself)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _layer(package: str) -> int:
    return next(index for index, layer in enumerate(LAYERS) if package in layer)


def _imports_up() -> list[str]:
    """Every import, anywhere in a module (a function's too), of a package not below its own."""
    found = []
    for module, path in MODULES.items():
        source = _package(module)
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
                if node.module == "mnist_mlops":  # from mnist_mlops import registry
                    names = [f"mnist_mlops.{a.name}" for a in node.names]
            for name in names:
                if not name.startswith("mnist_mlops."):
                    continue
                target = _package(name)
                if target != source and _layer(target) <= _layer(source) and _layer(source):
                    found.append(f"{module} imports {name}")
    return found


def test_only_kedros_own_modules_sit_at_the_top_of_the_package():
    top = {p.stem for p in PACKAGE.glob("*.py")}
    assert top == KEDRO_FILES, f"move {sorted(top - KEDRO_FILES)} into a package"


def test_every_package_imports_only_the_layers_below_it():
    assert {_package(m) for m in MODULES} <= set().union(*LAYERS)
    assert _imports_up() == []


def test_no_import_cycle_between_the_projects_modules():
    assert _cycle(_graph()) is None, " -> ".join(_cycle(_graph()) or [])


def _long_functions() -> dict[str, int]:
    """Every function of the package over :data:`MAX_FUNCTION_LINES` (``def`` to its last line,
    docstring included), by ``file:name``; ``create_pipeline`` functions are declarations."""
    found = {}
    for path in MODULES.values():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES and node.name != "create_pipeline":
                    found[f"{path.relative_to(PACKAGE).as_posix()}:{node.name}"] = lines
    return found


def test_no_function_is_over_40_lines():
    assert _long_functions() == {}


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, None),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
    ],
)
def test_the_cycle_check_finds_a_cycle(graph, expected):
    assert _cycle(graph) == expected
