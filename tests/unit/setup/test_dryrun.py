"""``gpuenv setup --dry-run``: the real steps with a recording runner and installer, and nothing written.

The plan holds what a dry run must show: a local tree (read where it is, not
copied), an index requirement (downloaded by the real run: its sha256 and its
build backend are not known before), and a CUDA toolkit from PyPI. The env
exists (so its interpreter answers, and the printed build line can be run).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from functools import partial
from pathlib import Path

import pytest

from gpuenv.cache.toolkitcache import toolkit_home
from gpuenv.env.targetenv import TargetEnv
from gpuenv.load.recipe import load_recipe
from gpuenv.plan.planner import PlanOptions, plan
from gpuenv.plan.toolkitchoice import ToolkitPolicy
from gpuenv.runner import RecordingRunner, SubprocessRunner
from gpuenv.setup.context import STATE_FILE, SetupOptions
from gpuenv.setup.run import run_setup
from gpuenv.setup.sources import copy_tree, fetch_source, tree_sha256
from tests.unit.plan.test_plan import D580, H100, machine

#: A backend in the tree itself (``backend-path``): the printed build line runs without setuptools.
BACKEND = '''
import json, os, zipfile
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    name = "tree_ext-0.3-py3-none-any.whl"
    seen = {k: os.environ.get(k) for k in ("TORCH_CUDA_ARCH_LIST", "CUDA_HOME", "VIRTUAL_ENV", "FORCE_CUDA")}
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as wheel:
        wheel.writestr("seen.json", json.dumps({"env": seen, "config": config_settings, "cwd": os.getcwd()}))
    return name
'''


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def local_tree(root: Path) -> Path:
    """A CUDA extension's tree (its setup.py is read, never run) with an in-tree backend, a .git and
    earlier build output, which a copy leaves out."""
    write(root / "pyproject.toml", '[project]\nname = "tree-ext"\nversion = "0.3"\n\n[build-system]\n'
                                   'requires = []\nbuild-backend = "inbackend"\nbackend-path = ["."]\n')
    write(root / "setup.py", "from setuptools import setup\n"
                             "from torch.utils.cpp_extension import BuildExtension, CUDAExtension\n"
                             "setup(name='tree-ext',\n"
                             "      ext_modules=[CUDAExtension('tree_ext._C', ['csrc/k.cu'])],\n"
                             "      cmdclass={'build_ext': BuildExtension})\n")
    write(root / "inbackend.py", BACKEND)
    write(root / "csrc" / "k.cu", "__global__ void k() {}\n")
    write(root / ".git" / "HEAD", "ref: refs/heads/main\n")
    write(root / "build" / "old.o", "earlier output\n")
    return root


def state_of(root: Path) -> dict[str, tuple[int, int, int, str]]:
    """Every entry under ``root``: mode, size, modification time and content hash (a folder's time
    changes when an entry is made in it, even one removed again)."""
    state = {".": (0, 0, root.stat().st_mtime_ns, "")}
    for folder, folders, files in os.walk(root):
        for name in [*folders, *files]:
            path = Path(folder) / name
            info = path.lstat()
            regular = path.is_file() and not path.is_symlink()
            content = hashlib.sha256(path.read_bytes()).hexdigest() if regular else ""
            state[str(path.relative_to(root))] = (info.st_mode, info.st_size, info.st_mtime_ns, content)
    return state


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A recipe beside its local tree, an env gpuenv made that holds no torch yet (no pip either: uv
    made it), a cache, a work folder; the temporary folder inside it too (constraints files)."""
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    local_tree(tmp_path / "tree")
    write(tmp_path / "envs" / "r.toml", '[torch]\nversion = "2.14.1"\n\n'
                                        '[[extensions]]\nrequirement = "../tree"\n\n'
                                        '[[extensions]]\nrequirement = "causal-conv1d==1.6.1"\n')
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "venv")], check=True)
    (tmp_path / "venv" / STATE_FILE).write_text("{}")
    (tmp_path / "cache").mkdir()
    return tmp_path


def dry_run(root: Path, *, adopted: bool = False) -> list[str]:
    recipe = load_recipe(root / "envs" / "r.toml")
    home = partial(toolkit_home, root / "cache" / "toolkits")
    toolkits = PlanOptions(toolkit=ToolkitPolicy("pypi", pypi_home=home))
    planned = plan(recipe, machine(H100, driver=D580), toolkits)
    options = SetupOptions(venv=root / "venv", installer="pip", cache_dir=root / "cache",
                           work_dir=root / "work", lock_file=root / "envs" / "gpuenv.lock", recipe_sha256="0",
                           adopted=adopted)
    return list(run_setup(planned, options, dry_run=True).commands)


def test_a_dry_run_runs_the_real_steps_and_writes_nothing(world: Path) -> None:
    before = state_of(world)
    lines = dry_run(world)
    assert state_of(world) == before, "no env change, no cache entry, no toolkit, no lock, no log, no copy"
    assert not (world / "work").exists() and not (world / "envs" / "gpuenv.lock").exists()

    python, work = world / "venv" / "bin" / "python", world / "work"
    home = world / "cache" / "toolkits" / "v1"

    def at(fragment: str, start: int = 0) -> int:
        return next(i for i, line in enumerate(lines) if i >= start and fragment in line)

    # The steps in order, each under its title; the env's pip is seeded once, by the first install.
    titles = [line for line in lines if line.startswith("# [")]
    assert titles == ["# [1/9] index preflight", "# [2/9] target environment", "# [3/9] base: torch==2.14.1",
                      "# [4/9] toolkit: CUDA 13.0 from PyPI", "# [5/9] extension tree",
                      "# [6/9] extension causal-conv1d", "# [7/9] runtime builds", "# [8/9] verify",
                      "# [9/9] lock file"]
    # A step that would change nothing says what it found.
    assert lines[at("# [2/9]") + 1] == f"# reusing {world / 'venv'}"
    base = at("# [3/9]")
    assert lines[base + 1:base + 3] == [f"{python} -m ensurepip --default-pip",
                                        f"{python} -m pip install torch==2.14.1"]
    assert sum("ensurepip" in line for line in lines) == 1
    assert "take torch to be 2.14.1 (CUDA 13.0), the build the plan expects" in lines[base + 3]

    # The toolkit: its wheels into a new folder of the cache, which a dry run cannot name.
    toolkit = lines[at("--only-binary :all: --target")]
    assert toolkit.startswith(f"{python} -m pip install --only-binary :all: --target "
                              f"'{home}/.tmp/<a new folder for CUDA 13.0>/wheels' 'cuda-toolkit[")
    assert toolkit.endswith("# <a new folder for CUDA 13.0>: not known before the real run gets here")

    # The local tree: its build requirements pinned to the planned torch (the constraints file written
    # as a line of shell), read where it is, and built by its own backend in the env's interpreter.
    tree = at("# [5/9]")
    assert lines[tree + 1].startswith("printf '%s\\n' torch==2.14.1 > " + str(Path(tempfile.gettempdir())))
    copied = work / "src" / "tree" / "src" / "tree"
    assert f"# copy {world / 'tree'} to {copied}" in lines[at("# copy", tree)]
    lookup = lines[at("looked up by the wheel's ABI key", tree)]
    assert "needs the torch that lands, the nvcc provisioned" in lookup
    build = lines[at("backend.build_wheel(", tree)]
    assert build.startswith(f"(cd {copied} && CUDA_HOME={home}/cuda-13.0 TORCH_CUDA_ARCH_LIST=9.0 "
                            "FORCE_CUDA=1 ")
    assert f'import inbackend as backend; print(backend.build_wheel("{work}/wheels", {{}}))' in build
    assert "not known" not in build, "a local tree's build line is complete"
    install = lines[at("pip install", at("backend.build_wheel(", tree))]
    assert "<the tree wheel it builds>" in install
    assert install.endswith("not known before the real run gets here")

    # The index requirement: downloaded with the extension's knobs, built by a backend read once it is there.
    conv = at("# [6/9]")
    download = lines[at("pip download", conv)]
    assert download.startswith(f"CUDA_HOME={home}/cuda-13.0 TORCH_CUDA_ARCH_LIST=9.0 "
                               "CAUSAL_CONV1D_FORCE_BUILD=TRUE")
    assert download.endswith(f"-d {work}/src/causal-conv1d/download causal-conv1d==1.6.1")
    assert "needs the causal-conv1d sdist's sha256" in lines[at("looked up by the wheel's ABI key", conv)]
    assert "<the build backend it names>" in lines[at("backend.build_wheel(", conv)]

    site = world / "venv" / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    assert lines[at("# [7/9]") + 1].startswith(f"# write {site / '_gpuenv_runtime.pth'}: ")
    assert lines[at("# [8/9]") + 1].startswith("# verify in one interpreter")
    assert lines[at("# [9/9]") + 1].startswith(f"# write the entry of r in {world / 'envs' / 'gpuenv.lock'}")


def test_the_printed_build_of_a_local_tree_runs_as_printed(world: Path) -> None:
    """Pasted into a shell (after the copy its line says), the backend call builds the wheel in the env's
    interpreter with the build environment and config settings the real run gives it."""
    lines = dry_run(world)
    work = world / "work"
    copied = work / "src" / "tree" / "src" / "tree"
    copy_tree(world / "tree", copied)
    (work / "wheels").mkdir()
    for line in lines[lines.index("# [5/9] extension tree"):lines.index("# [6/9] extension causal-conv1d")]:
        if "import inbackend as backend" in line:
            subprocess.run(["bash", "-c", line], check=True, capture_output=True)
    with zipfile.ZipFile(work / "wheels" / "tree_ext-0.3-py3-none-any.whl") as wheel:
        seen = json.loads(wheel.read("seen.json"))
    toolkit = str(world / "cache" / "toolkits" / "v1" / "cuda-13.0")
    assert seen == {"env": {"TORCH_CUDA_ARCH_LIST": "9.0", "CUDA_HOME": toolkit,
                            "VIRTUAL_ENV": str(world / "venv"), "FORCE_CUDA": "1"},
                    "config": {}, "cwd": str(copied)}
    assert not (copied / ".git").exists() and not (copied / "build").exists()


def test_a_local_tree_read_in_place_has_the_digest_of_its_copy(tmp_path: Path) -> None:
    tree = local_tree(tmp_path / "tree")
    (tree / "run.sh").write_text("#!/bin/sh\n")
    (tree / "run.sh").chmod(0o755)
    (tree / "link").symlink_to("csrc")
    write(tree / "csrc" / "__pycache__" / "x.pyc", "old")
    env = TargetEnv(tmp_path / "venv")
    read = fetch_source("tree-ext", env=env, runner=RecordingRunner(), workdir=tmp_path / "dry", path=tree)
    copied = fetch_source("tree-ext", env=env, runner=SubprocessRunner(),
                          workdir=tmp_path / "real", path=tree)
    assert not (tmp_path / "dry").exists() and read.origin == tree and read.readable == tree
    assert (copied.directory / "run.sh").is_file() and not (copied.directory / "build").exists()
    assert read.digest == copied.digest == "sha256:" + tree_sha256(copied.directory)
    assert read.directory == tmp_path / "dry" / "src" / "tree" and read.version == copied.version == "0.3"


def test_a_dry_run_of_an_env_gpuenv_did_not_make_says_its_journal_and_writes_none(world: Path) -> None:
    (world / "venv" / STATE_FILE).unlink()  # now an env gpuenv adopts: recorded, restored if setup fails
    before = state_of(world)
    lines = dry_run(world, adopted=True)
    assert state_of(world) == before
    adopt = lines.index("# [2/9] target environment (adopted)")
    assert lines[adopt + 1] == (f"# record what {world / 'venv'} holds in {world / 'work'}: setup puts it "
                                "back if it fails")
    runtime = lines.index("# [7/9] runtime builds")
    assert lines[runtime + 1].startswith(f"# no _gpuenv_runtime.pth written into {world / 'venv'} ")


def test_a_dry_run_into_a_new_env_asks_the_interpreter_it_is_made_with(tmp_path: Path) -> None:
    """The env does not exist: the interpreter that would make it answers (its site-packages is the
    new env's); a git source is cloned by the real run, so its commit is not known."""
    recipe = load_recipe(write(tmp_path / "r.toml", '[torch]\nversion = "2.13.0"\n\n[[extensions]]\n'
                                                    'requirement = "myext @ git+https://host.invalid/me/myext.git'
                                                    '@v1"\n'))
    venv = tmp_path / "new venv"
    options = SetupOptions(venv=venv, installer="pip", cache_dir=tmp_path / "cache")
    lines = list(run_setup(plan(recipe, machine()), options, dry_run=True).commands)
    assert not venv.exists() and not (tmp_path / "cache").exists()
    assert lines[lines.index("# [2/6] target environment") + 1] == f"{sys.executable} -m venv '{venv}'"
    clone = next(line for line in lines if "git clone" in line)
    checkout = venv / ".gpuenv" / "src" / "myext" / "git" / "myext"
    assert clone == (f"GIT_TERMINAL_PROMPT=0 git clone --depth 1 --branch v1 --recurse-submodules "
                     f"--shallow-submodules https://host.invalid/me/myext.git '{checkout}'")
    assert any("needs the commit v1 is at" in line for line in lines)
    build = next(line for line in lines if "backend.build_wheel(" in line)
    assert build.startswith(f"(cd '{checkout}' && "), "built in the checkout"
    assert "import <the build backend it names> as backend" in build, "read once it is cloned, not guessed"
    site = venv / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    assert f"# write {site / '_gpuenv_runtime.pth'}: " in "\n".join(lines)
