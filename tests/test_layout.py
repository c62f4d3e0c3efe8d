"""The package layout holds: no import cycles, components apart, modules a reader can hold in their head."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "hardenkit"

#: Component packages: each may import the shared core, the errors, the version and other
#: components' *public* package names, never another component's modules.
COMPONENTS = (
    "headers",
    "ratelimit",
    "auth",
    "logs",
    "metrics",
    "lock",
    "health",
    "aio",
    "timeouts",
    "check",
    "cli",
)
SHARED = ("hardenkit._core", "hardenkit.errors", "hardenkit._version")
MAX_LINES = 800
MAX_INIT_LINES = 60


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(body: list[ast.stmt], *, top_level: bool) -> Iterator[ast.Import | ast.ImportFrom]:
    """Imports run when the module is imported (top_level) or ever (any depth), minus TYPE_CHECKING blocks."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and _is_type_checking(node):
            yield from _import_nodes(node.orelse, top_level=top_level)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and top_level:
            continue
        else:
            for field in ("body", "orelse", "finalbody", "handlers"):
                children = getattr(node, field, None)
                if isinstance(children, list):
                    yield from _import_nodes(
                        [c for c in children if isinstance(c, ast.stmt)]
                        + [s for h in children if isinstance(h, ast.ExceptHandler) for s in h.body],
                        top_level=top_level,
                    )


def _imports(name: str, *, top_level: bool) -> set[str]:
    """The hardenkit modules ``name`` imports by name (``from .x import y`` names x, and y if a module)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _import_nodes(ast.parse(path.read_text()).body, top_level=top_level):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            submodules = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in MODULES]
            # `from . import kit` names the module kit; `from .kit import Kit` names kit.
            targets = submodules if node.module is None and submodules else [base, *submodules]
        for target in targets:
            if target in MODULES:
                found.add(target)
    found.discard(name)
    return found


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_walk_sees_every_package() -> None:
    for component in COMPONENTS:
        assert f"hardenkit.{component}" in MODULES
    assert "hardenkit._core.kit" in _imports("hardenkit._core", top_level=True)


def test_no_import_cycles_when_modules_load() -> None:
    graph = {name: _imports(name, top_level=True) for name in MODULES}
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_no_import_cycles_between_packages_even_through_lazy_imports() -> None:
    # Lazy imports inside functions (PEP 562 __getattr__, optional backends) may point back into
    # their own package, never from one package to another and back.
    def package(name: str) -> str:
        return ".".join(name.split(".")[:2])

    graph: dict[str, set[str]] = {}
    for name in MODULES:
        graph.setdefault(package(name), set()).update(
            package(t) for t in _imports(name, top_level=False) if package(t) != package(name)
        )
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_a_cycle_is_found_when_there_is_one() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("component", [c for c in COMPONENTS if c != "cli"])
def test_the_shared_core_imports_no_component(component: str) -> None:
    for name in MODULES:
        if name.startswith("hardenkit._core"):
            assert not any(t.startswith(f"hardenkit.{component}") for t in _imports(name, top_level=False)), (
                name
            )


@pytest.mark.parametrize("component", COMPONENTS)
def test_a_component_uses_only_public_names_of_others(component: str) -> None:
    own = f"hardenkit.{component}"
    for name in MODULES:
        if name != own and not name.startswith(own + "."):
            continue
        for target in _imports(name, top_level=False):
            if target == own or target.startswith(own + ".") or target.startswith(SHARED):
                continue
            other = ".".join(target.split(".")[:2])
            assert target == other, f"{name} imports {target}: use the public names of {other}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_fit_in_a_readers_head(name: str) -> None:
    path = MODULES[name]
    lines = path.read_text().splitlines()
    if path.name == "__init__.py" and name != "hardenkit":
        # The top-level __init__ holds the lazy-import table of every public name.
        assert len(lines) < MAX_INIT_LINES, f"{path}: a package __init__ only re-exports"
    if len(lines) > MAX_LINES:
        docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
        assert "one table" in docstring or "one piece" in docstring, (
            f"{path} has {len(lines)} lines: split it by concern, or say in its docstring why it is one piece"
        )
