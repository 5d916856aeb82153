"""The folders say what the imports do: each layer imports only the layers below it, and nothing circles.

The layers, lowest first (each package's ``__init__`` says the same):

- the ground: ``errors``, ``runner``, ``inputs``, ``outputs``, ``printable``, ``hints``, ``progress``,
  ``tomlwrite``, ``options`` (every option, declared once), ``version``;
- ``plan``: recipe + hardware -> plan, pure: it starts no subprocess and opens no file but its own
  data (``plan/packagedata.py``);
- ``load``: what gpuenv reads before planning (the recipe, its requirements files, local trees), read,
  never run;
- ``probe``: what this machine has;
- ``env``: readers of a Python environment (its interpreter, distributions, torch, pip configuration,
  the ABI it gives compiled extensions);
- ``lock``: gpuenv.lock, and the plan that rebuilds what it records;
- ``cache``: what outlives a setup (the wheel cache, the toolkit cache, one store under both);
- ``setup``: making the env;
- the commands: ``doctor``, ``init``, ``export``, ``catalogcheck`` (the knowledge checker: nothing imports
  it);
- ``api``: the library's API, composing the layers below for the front ends and scripts;
- the front ends: ``cli`` (with ``cli_handlers``, ``cli_parser``, ``cli_help``, ``cli_output``),
  ``integrations``, and ``render`` (the text of the records they print). They import only the API, the
  errors, the option table and what they render.

Every import counts, those inside functions too: a deferred import still
ties the layers together, and closes a circle as surely as any other.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import gpuenv

PACKAGE = Path(gpuenv.__file__).parent
GROUND = {"errors", "runner", "inputs", "outputs", "printable", "hints", "progress", "tomlwrite", "options",
          "version", "__init__"}
COMMANDS = {"doctor", "init", "export", "catalogcheck"}
FRONT_ENDS = {"cli", "cli_handlers", "cli_help", "cli_output", "cli_parser", "render", "integrations",
              "__main__"}
LAYERS = ["ground", "plan", "load", "probe", "env", "lock", "cache", "setup", "commands", "api", "front end"]
#: What a front end may import besides the other front ends: the API, the errors, the option table, the
#: version, and what it renders (render.py, the terminal's progress and colour, escaped text, OS errors
#: in words).
FRONT_END_IMPORTS = {"gpuenv", "gpuenv.api", "gpuenv.errors", "gpuenv.options", "gpuenv.version",
                     "gpuenv.render", "gpuenv.progress", "gpuenv.printable", "gpuenv.outputs"}


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
    if first in COMMANDS:
        return "commands"
    assert first in LAYERS, f"{module} is in no layer: add it to one (and to this test's list)"
    return first


def imports(path: Path, *, top_level_only: bool = False) -> Iterator[tuple[int, str]]:
    """(line, module) of each gpuenv module ``path`` imports (a name imported from a package that is a
    module counts as that module). The package root names its public API for type checkers only (``if
    TYPE_CHECKING``); at run time it imports each name when first asked for (test_importing_gpuenv_...)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    if path == PACKAGE / "__init__.py":
        tree.body = [n for n in tree.body
                     if not (isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING")]
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


def test_front_ends_import_only_the_api_the_errors_and_what_they_render() -> None:
    wrong = [f"{module} line {line} imports {target}" for module, path in MODULES.items()
             if layer(module) == "front end" and module != "gpuenv.render"
             for line, target in imports(path)
             if layer(target) != "front end" and not any(target == allowed or target.startswith(f"{allowed}.")
                                                         for allowed in FRONT_END_IMPORTS - {"gpuenv"})
             and target != "gpuenv"]
    assert not wrong, "\n".join(wrong)


def test_nothing_imports_the_knowledge_checker() -> None:
    wrong = [f"{module} line {line} imports {target}" for module, path in MODULES.items()
             if not module.startswith("gpuenv.catalogcheck")
             for line, target in imports(path) if target.startswith("gpuenv.catalogcheck")]
    assert not wrong, "\n".join(wrong)


def _runs_anything(path: Path) -> list[tuple[int, str]]:
    """(line, module) of each import of a way to run a program: subprocess, multiprocessing, the runner."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                 else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
        found += [(node.lineno, name) for name in names
                  if name.split(".")[0] in ("subprocess", "multiprocessing") or name == "gpuenv.runner"]
    return found


@pytest.mark.parametrize("package", ["plan", "load"])
def test_the_planner_and_what_it_reads_start_no_subprocess(package: str) -> None:
    """The planner is pure; what it is given is read from files, never by running anything (a setup.py,
    git): both hold on any machine, in any sandbox."""
    wrong = [f"{module} line {line}: {name}" for module, path in MODULES.items() if layer(module) == package
             for line, name in _runs_anything(path)]
    assert not wrong, "\n".join(wrong)


#: The readers of gpuenv.inputs that open a file.
FILE_READERS = {"read_input", "read_input_bytes", "read_json", "open_input"}
#: Path's methods that open a file or list a folder, and os' functions that do.
PATH_READS = {"read_text", "read_bytes", "open", "iterdir", "glob", "rglob"}
OS_READS = {"open", "walk", "scandir", "listdir", "fdopen"}
#: The planner's one reader: of the data files gpuenv ships.
PACKAGE_DATA = "gpuenv.plan.packagedata"


def _opens(path: Path) -> list[tuple[int, str]]:
    """(line, what) of each way ``path``'s code opens a file or lists a folder."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module in ("gpuenv.inputs", "importlib"):
            found += [(node.lineno, f"imports {a.name}") for a in node.names
                      if a.name in FILE_READERS or a.name == "resources"]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, f"imports {a.name}") for a in node.names
                      if a.name == "importlib.resources"]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "open":
            found.append((node.lineno, "open()"))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            on_os = isinstance(node.func.value, ast.Name) and node.func.value.id == "os"
            if node.func.attr in (OS_READS if on_os else PATH_READS):
                found.append((node.lineno, f".{node.func.attr}()"))
    return found


def test_the_planner_opens_no_file_but_its_own_data() -> None:
    """What the planner is given was read before (gpuenv.load, gpuenv.probe, gpuenv.env); it may ask
    whether a recipe's path exists (a stat, in recipevalues), never what a file or folder holds."""
    wrong = [f"{module} line {line}: {what}" for module, path in MODULES.items()
             if layer(module) == "plan" and module != PACKAGE_DATA for line, what in _opens(path)]
    assert not wrong, "\n".join(wrong)
    assert _opens(MODULES[PACKAGE_DATA]), "the package-data loader is where the planner's reading is"


def test_no_import_circles() -> None:
    """Deferred imports included: an import inside a function that closes a circle is a circle."""
    graph = {m: {t for _, t in imports(p) if t in MODULES and t != m} for m, p in MODULES.items()}
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


def test_importing_gpuenv_imports_nothing_else_and_each_public_name_loads_when_asked_for() -> None:
    import subprocess
    import sys

    code = ("import sys, gpuenv; print(sorted(m for m in sys.modules if m.startswith('gpuenv'))); "
            "print(all(getattr(gpuenv, n) is not None for n in gpuenv.__all__))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["['gpuenv']", "True"], done.stdout + done.stderr
