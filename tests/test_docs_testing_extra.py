"""Every docs example runs in a venv made from ``pip install hardenkit[testing]`` plus the framework it shows.

Proved by import checks against the installed metadata: each module a ``python``
block of README.md or docs/*.md imports is the standard library, hardenkit, a
distribution that ``hardenkit`` or its ``testing`` extra requires (directly or
through their own requirements), or one framework (FastAPI, Litestar, Quart,
Django) with what it requires. Modules that need a package their own distribution
does not declare (starlette's TestClient needs httpx2, or httpx before starlette
1.0) must find it in the ``testing`` extra.
"""

from __future__ import annotations

import ast
import re
import sys
from functools import cache
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
FRAMEWORKS = ("fastapi", "litestar", "quart", "django")
# Modules that import a client their distribution does not require: any one of these must
# be in the testing extra.
NEEDS_CLIENT = {"starlette.testclient": {"httpx2", "httpx"}, "fastapi.testclient": {"httpx2", "httpx"}}
NEEDS_CLIENT["hardenkit.testing"] = NEEDS_CLIENT["starlette.testclient"]


def _name(requirement: str) -> str:
    return re.split(r"[\s;<>=!~\[(]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _requirements(distribution: str, extra: str | None = None) -> set[str]:
    """Names a distribution requires: unconditionally, or (with ``extra``) for that extra only."""
    try:
        declared = metadata.requires(distribution) or []
    except metadata.PackageNotFoundError:
        return set()
    found: set[str] = set()
    for requirement in declared:
        marker = requirement.partition(";")[2]
        in_extra = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", marker)
        if extra is None and in_extra is None:
            found.add(_name(requirement))
        elif extra is not None and in_extra is not None and in_extra.group(1) == extra:
            found.add(_name(requirement))
    return found


@cache
def _closure(*roots: str) -> frozenset[str]:
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(_requirements(name) - seen)
    return frozenset(seen)


@cache
def _packages() -> dict[str, list[str]]:
    """Top-level module -> distributions, from each distribution's files (Python 3.10's
    ``packages_distributions`` reads only ``top_level.txt``, which modern wheels omit)."""
    found: dict[str, list[str]] = {}
    for distribution in metadata.distributions():
        name = distribution.metadata["Name"]
        tops = {
            file.parts[0] if len(file.parts) > 1 else file.stem
            for file in distribution.files or ()
            if file.suffix == ".py" and not file.parts[0].startswith("..")
        }
        for top in tops:
            found.setdefault(top, []).append(name)
    return found


def _distributions(module: str) -> set[str]:
    names = _packages().get(module.split(".")[0], [])
    return {name.lower().replace("_", "-") for name in names}


def _imports(code: str) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
    return modules


def blocks() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        for index, match in enumerate(BLOCK.finditer(page.read_text(encoding="utf-8"))):
            found.append((f"{page.relative_to(ROOT)}#{index + 1}", match.group(1)))
    return found


def test_the_testing_extra_brings_a_client_for_every_supported_starlette() -> None:
    testing = _requirements("hardenkit", "testing")
    assert {"httpx2", "httpx"} <= testing


@pytest.mark.parametrize(("where", "code"), blocks(), ids=[where for where, _ in blocks()])
def test_docs_example_needs_only_hardenkit_testing_and_its_framework(where: str, code: str) -> None:
    testing = _requirements("hardenkit", "testing")
    base = _closure("hardenkit", *sorted(testing))
    modules = _imports(code)
    shown = {top for top in (module.split(".")[0] for module in modules) if top in FRAMEWORKS}
    assert len(shown) <= 1, f"{where} shows several frameworks: {sorted(shown)}"
    allowed = base | _closure(*sorted(shown))
    for module in sorted(modules):
        top = module.split(".")[0]
        if top in sys.stdlib_module_names or top == "hardenkit":
            continue
        distributions = _distributions(module)
        assert distributions, f"{where}: {module} is not installed here"
        assert distributions & allowed, (
            f"{where}: {module} comes from {sorted(distributions)}, which neither hardenkit[testing] "
            f"nor the framework it shows ({sorted(shown) or 'none'}) brings"
        )
        clients = NEEDS_CLIENT.get(module)
        if clients is not None:
            assert clients & testing, f"{where}: {module} needs one of {sorted(clients)} in the testing extra"
    for module, clients in NEEDS_CLIENT.items():
        if module.split(".")[0] == "hardenkit" and re.search(rf"\b{re.escape(module)}\b", code):
            assert clients & testing


def test_the_first_docs_page_says_to_install_the_testing_extra() -> None:
    index = (ROOT / "docs" / "index.md").read_text(encoding="utf-8")
    before_first_example = index[: index.index("```")]
    assert "hardenkit[testing]" in before_first_example
