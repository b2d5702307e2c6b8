"""The import graph of `pipeline/` follows the layers written down in ARCHITECTURE.md.

Read from the source with `ast` (nothing is imported): every `import` and `from … import`,
at module level, inside functions and under `if TYPE_CHECKING:`. Three rules:

1. a module imports only modules of its own layer or of lower layers;
2. no import cycles between modules (type-only imports excepted: they never run);
3. imports inside functions only where ARCHITECTURE.md says start-up time needs them.

`python -m tests.unit.test_layers` prints the modules per layer and the imports between layers.
"""

from __future__ import annotations

import ast
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "pipeline"

# Lowest first. A module belongs to the first layer whose prefix matches its dotted name.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "base",
        (
            "pipeline",  # the package itself: __version__
            "pipeline.errors",
            "pipeline.secrets",
            "pipeline.operation",
            "pipeline.ui",
            "pipeline.paths",
            "pipeline.filelock",
            "pipeline.stages",
            "pipeline.versions",
            "pipeline.refs",
            "pipeline.spec",
            "pipeline.checker",
            "pipeline.toolchain.requirements",
        ),
    ),
    (
        "core",
        (
            "pipeline.validate",
            "pipeline.specload",
            "pipeline.context",
            "pipeline.tags",
            "pipeline.labels",
            "pipeline.plan",
            "pipeline.gate",
            "pipeline.oci",
            "pipeline.retry",
            "pipeline.state",
            "pipeline.preflight",
            "pipeline.predicates",
            "pipeline.relocation",
            "pipeline.dockerignore",
            "pipeline.imagegraph",
            "pipeline.buildlog",
            "pipeline.emit",
            "pipeline.adopt",
        ),
    ),
    ("adapters", ("pipeline.adapters",)),
    ("machine", ("pipeline.sandbox", "pipeline.toolchain")),
    ("engine", ("pipeline.engine",)),
    (
        "entry points",
        ("pipeline.commands", "pipeline.cli", "pipeline.__main__", "pipeline.nox_sessions"),
    ),
)
RANK = {name: rank for rank, (name, _) in enumerate(LAYERS)}

# Modules allowed to import inside functions, and why (the same list is in ARCHITECTURE.md).
FUNCTION_LEVEL_IMPORTS = {
    "pipeline.adapters.git": "GitPython costs ~0.1 s and runs `git version`: only when git is read",
}


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int
    in_function: bool
    type_only: bool


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> str:
    best = ("", -1)
    for name, prefixes in LAYERS:
        for prefix in prefixes:
            # The package itself holds only __version__: it is no prefix of its modules.
            below = prefix != "pipeline" and module.startswith(prefix + ".")
            matches = module == prefix or below
            if matches and len(prefix) > best[1]:
                best = (name, len(prefix))
    if not best[0]:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS and ARCHITECTURE.md")
    return best[0]


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _targets(node: ast.Import | ast.ImportFrom, source: str, known: set[str]) -> list[str]:
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:  # relative import
            package = source.split(".")[: -node.level] if source != "pipeline" else ["pipeline"]
            base = ".".join([*package, *([base] if base else [])])
        # `from pipeline import ui` imports the module pipeline.ui (its package's __init__ runs
        # too, but that is Python's machinery, not a dependency); `from pipeline.spec import
        # Image` imports pipeline.spec.
        submodules = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known]
        names = submodules if len(submodules) == len(node.names) else [base, *submodules]
    found = []
    for name in names:
        module = name
        while module and module not in known:
            module = module.rpartition(".")[0]
        if module.startswith("pipeline") and module in known:
            found.append(module)
    return found


def edges() -> list[Edge]:
    known = set(modules())
    result: list[Edge] = []
    for source, path in modules().items():
        tree = ast.parse(path.read_text(), str(path))

        def visit(node: ast.AST, *, in_function: bool, type_only: bool, src: str = source) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.Import, ast.ImportFrom)):
                    for target in _targets(child, src, known):
                        if target != src:
                            result.append(Edge(src, target, child.lineno, in_function, type_only))
                    continue
                nested = in_function or isinstance(
                    child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
                )
                guarded = type_only or (isinstance(child, ast.If) and _is_type_checking(child))
                visit(child, in_function=nested, type_only=guarded)

        visit(tree, in_function=False, type_only=False)
    return result


def function_level_imports() -> list[tuple[str, int, str]]:
    """(module, line, imported name) of every import inside a function, any package."""
    found = []
    for source, path in modules().items():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for sub in ast.walk(node):
                    if isinstance(sub, ast.Import):
                        found += [(source, sub.lineno, alias.name) for alias in sub.names]
                    elif isinstance(sub, ast.ImportFrom):
                        found.append((source, sub.lineno, sub.module or "."))
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))

    def connect(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def test_every_module_has_a_layer() -> None:
    for module in modules():
        layer_of(module)


def test_imports_point_to_the_same_or_a_lower_layer() -> None:
    violations = [
        f"{e.source} ({layer_of(e.source)}) imports {e.target} ({layer_of(e.target)}) at line "
        f"{e.line}"
        for e in edges()
        if RANK[layer_of(e.target)] > RANK[layer_of(e.source)]
    ]
    assert violations == []


def test_no_import_cycles() -> None:
    graph: dict[str, set[str]] = {}
    for edge in edges():
        if not edge.type_only:
            graph.setdefault(edge.source, set()).add(edge.target)
    assert cycles(graph) == []


def test_imports_inside_functions_only_where_start_up_needs_them() -> None:
    stray = [
        f"{module}:{line} imports {name} inside a function"
        for module, line, name in function_level_imports()
        if module not in FUNCTION_LEVEL_IMPORTS
    ]
    assert stray == []


def test_the_allow_list_is_written_down() -> None:
    text = (ROOT / "ARCHITECTURE.md").read_text()
    for module in FUNCTION_LEVEL_IMPORTS:
        assert f"`{module}`" in text, f"ARCHITECTURE.md does not name {module}"
    for name, _ in LAYERS:
        assert f"**{name}**" in text, f"ARCHITECTURE.md does not describe the {name} layer"


def summary() -> str:
    """Modules per layer and the imports between layers (`python -m tests.unit.test_layers`)."""
    per_layer = Counter(layer_of(m) for m in modules())
    between = Counter(
        (layer_of(e.source), layer_of(e.target))
        for e in edges()
        if layer_of(e.source) != layer_of(e.target)
    )
    lines = [f"{name}: {per_layer[name]} modules" for name, _ in LAYERS]
    lines += [f"  {a} -> {b}: {n} imports" for (a, b), n in sorted(between.items())]
    inside = function_level_imports()
    lines.append(f"imports inside functions: {len(inside)}")
    lines += [f"  {module}:{line} {name}" for module, line, name in inside]
    return "\n".join(lines)


if __name__ == "__main__":
    print(summary())
