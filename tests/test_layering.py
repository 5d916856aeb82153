"""The folders say what the imports do: each layer imports only the layers below it, and nothing circles.

The layers, lowest first (each package's ``__init__`` says the same):

- the ground: ``errors``, ``runner``, ``inputs``, ``outputs``, ``printable``, ``hints``, ``progress``,
  ``tomlwrite``;
- ``plan``: recipe + hardware -> plan, pure: it starts no subprocess;
- ``load``: what gpuenv reads before planning (the recipe, its requirements files, local trees);
- ``probe``: what this machine has;
- ``env``: readers of a Python environment (its interpreter, distributions, torch, pip configuration);
- ``lock``: gpuenv.lock, and the plan that rebuilds what it records;
- ``cache``: what outlives a setup;
- ``setup``: making the env;
- the front ends: ``cli`` (with ``cli_parser``, ``cli_help``, ``cli_output``), ``render``, ``integrations``,
  ``doctor``, ``init``, ``export``, ``catalogcheck`` (the knowledge checker: nothing imports it).

Every import counts, those inside functions too: a deferred import still
ties the layers together.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import gpuenv

PACKAGE = Path(gpuenv.__file__).parent
GROUND = {"errors", "runner", "inputs", "outputs", "printable", "hints", "progress", "tomlwrite", "__init__"}
FRONT_ENDS = {"cli", "cli_help", "cli_output", "cli_parser", "render", "integrations", "doctor", "init",
              "export", "catalogcheck", "__main__"}
LAYERS = ["ground", "plan", "load", "probe", "env", "lock", "cache", "setup", "front end"]


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name ("gpuenv.load.recipe")."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 2 else parts)
        found[name] = path
    return found


MODULES = modules()


def layer(module: str) -> str:
    first = module.split(".")[1] if "." in module else "__init__"
    if first in GROUND:
        return "ground"
    if first in FRONT_ENDS:
        return "front end"
    assert first in LAYERS, f"{module} is in no layer: add it to one (and to this test's list)"
    return first


def imports(path: Path, *, top_level_only: bool = False) -> Iterator[tuple[int, str]]:
    """(line, module) of each gpuenv module ``path`` imports (a name imported from a package that is a
    module counts as that module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("gpuenv"):
                    yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("gpuenv"):
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                yield node.lineno, candidate if candidate in MODULES else node.module


def test_every_module_is_in_a_layer() -> None:
    assert {layer(m) for m in MODULES} == set(LAYERS)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_module_imports_only_its_own_layer_and_those_below(module: str) -> None:
    rank = LAYERS.index(layer(module))
    wrong = [f"line {line}: {module} ({layer(module)}) imports {target} ({layer(target)})"
             for line, target in imports(MODULES[module])
             if target in MODULES and LAYERS.index(layer(target)) > rank]
    assert not wrong, "\n".join(wrong)


def test_nothing_but_the_front_ends_imports_the_cli_or_the_renderer() -> None:
    wrong = [f"{module} imports {target}" for module, path in MODULES.items() if layer(module) != "front end"
             for _, target in imports(path) if target in ("gpuenv.cli", "gpuenv.render")]
    assert not wrong


def test_nothing_imports_the_knowledge_checker() -> None:
    wrong = [f"{module} line {line} imports {target}" for module, path in MODULES.items()
             if not module.startswith("gpuenv.catalogcheck")
             for line, target in imports(path) if target.startswith("gpuenv.catalogcheck")]
    assert not wrong, "\n".join(wrong)


def test_the_planner_starts_no_subprocess() -> None:
    wrong = []
    for module, path in MODULES.items():
        if layer(module) != "plan":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            wrong += [f"{module} line {node.lineno}: {name}" for name in names
                      if name.split(".")[0] in ("subprocess", "multiprocessing") or name == "gpuenv.runner"]
    assert not wrong, "\n".join(wrong)


def test_no_module_level_import_circles() -> None:
    graph = {m: {t for _, t in imports(p, top_level_only=True) if t in MODULES and t != m}
             for m, p in MODULES.items()}
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            cycle = [*path[path.index(node):], node]
            pytest.fail("an import circle: " + " -> ".join(cycle))
        if node in done:
            return
        for target in sorted(graph[node]):
            # A package's __init__ imports nothing; importing gpuenv.x.y runs gpuenv.x first.
            visit(target, [*path, node])
        done.add(node)

    for module in sorted(graph):
        visit(module, [])


def test_each_package_says_what_it_holds_and_what_it_may_import() -> None:
    for init in sorted(PACKAGE.glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert doc and "import" in doc, f"{init} needs a docstring saying what it holds and may import"
