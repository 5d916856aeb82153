"""The ``gpuenv`` command: a record per command (its help, its handler, its options) and one error boundary.

:data:`COMMANDS` is every command; :mod:`gpuenv.cli_parser` makes the parser from it and the option
table (:data:`gpuenv.options.OPTIONS`), the invoke tasks are made from both, and each handler
(:mod:`gpuenv.cli_handlers`) is a few lines over :mod:`gpuenv.api`. A new command is one record here (and
its handler); a new option is one entry in the table and its name in the records that take it. A
:class:`~gpuenv.errors.GpuenvError` becomes an ``error:`` line, an optional ``hint:`` line and its exit
code; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence

from gpuenv import cli_handlers as run
from gpuenv.cli_help import CommandHelp
from gpuenv.cli_output import Output, os_error, print_error, show_warnings, tolerant_streams
from gpuenv.cli_parser import Command, build_parser
from gpuenv.errors import EXIT_BAD_INPUT, EXIT_OK, GpuenvError

_RECIPE_FILES = "the recipe (-r FILE, else envs/default.toml, else pyproject.toml's [tool.gpuenv])"
_CACHE_FILES = "the wheel cache (--cache-dir, else $GPUENV_CACHE_DIR, else ~/.cache/gpuenv/wheels)"

#: The options of the commands that plan: the recipe, the machine, the index, the toolkit, the caches.
PLANNING = ("recipe", "hardware", "gpu", "arch", "cuda", "torch_index", "toolkit", "cache_dir", "no_cache",
            "offline", "refresh", "cache_from", "push", "prebuilt")
#: Which env: gpuenv's own, a conda env, a container's Python.
ENV = ("venv", "python")

#: Every command, in the order 'gpuenv --help' lists them: its help (the line in the list, a paragraph,
#: its files, examples that tests/unit/test_readme.py runs), its handler and its options (--help lists them
#: in this order; -v, -q and --color come with every command).
COMMANDS = (
    Command("probe", run.probe, ("json", "cache_dir"), CommandHelp(
        "what this machine has: driver, GPUs, toolkits, CPUs, memory",
        "Asks NVML for the driver, the CUDA version it supports and each GPU (name, compute capability, "
        "memory), and looks for CUDA toolkits in CUDA_HOME, CUDA_PATH, every nvcc on PATH and "
        "/usr/local/cuda*. No driver is a normal answer: no GPUs, exit 0. The JSON is what "
        "'--hardware FILE' reads back, to plan for this machine from another one.",
        "NVML (libnvidia-ml.so.1), the CUDA toolkits on disk, /proc/meminfo",
        "nothing (--json > FILE saves it)",
        ("gpuenv probe", "gpuenv probe --json > node.json  # to plan elsewhere: --hardware node.json"),
    )),
    Command("gpus", run.gpus, ("substring", "json"), CommandHelp(
        "the GPU names --gpu accepts, with their compute capability",
        "Lists the GPU models gpuenv knows by name, with compute capability and memory: the names "
        "'--gpu' accepts (with a count: 8xH100). Names match ignoring case, spaces, dashes and a "
        "leading NVIDIA, Tesla or GeForce; SUBSTRING filters the list the same way. A GPU not listed "
        "is planned for by its compute capability: --arch X.Y.",
        "the GPU table inside the package (gpuenv/plan/data/gpus.toml)",
        "nothing",
        ("gpuenv gpus", "gpuenv gpus rtx  # only names containing 'rtx'", "gpuenv gpus h100 --json"),
    )),
    Command("plan", run.plan, (*PLANNING, *ENV, "json"), CommandHelp(
        "what setup would do for a recipe on this (or another) machine",
        "Shows what 'gpuenv setup' would do, without doing it: the torch variant and why, the index "
        "torch comes from, the arch list, the toolkit, the environment each extension is built with, "
        "which extensions the wheel cache already holds, every skip with its reason, and where its torch "
        "facts came from. It first reads which torch releases exist from pip's indexes and the PyTorch "
        "index (cached for a day; --offline: none, gpuenv's shipped data only); it needs no GPU, runs "
        "nothing of a recipe's or a repository's, and asks the toolkits on disk only their version; "
        "--gpu, --arch or --hardware plan for other machines. With --python or --venv (or use = "
        "\"existing\" in the recipe's [torch]) it plans for the torch installed there, as setup would "
        "build into that env: it runs that env's interpreter (and so its .pth files), which reads torch "
        "from its files and imports it only where they do not say.",
        f"{_RECIPE_FILES}; NVML or --hardware FILE; the toolkits on disk; the wheel cache; pip's "
        "configuration; the package indexes (or CACHE_DIR/index/torch-index.json); the torch of "
        "--python/--venv",
        "CACHE_DIR/index/torch-index.json (what the indexes said)",
        ("gpuenv plan", "gpuenv plan -r envs/llm.toml --gpu H100  # for a GPU this node does not have",
         "gpuenv plan --python /opt/conda/bin/python  # for the torch of a conda env or a container"),
    )),
    Command("setup", run.setup, (*PLANNING, *ENV, "break_system_packages", "installer", "work_dir", "dry_run",
                                 "locked"), CommandHelp(
        "create the environment: torch, then the extensions built for your GPUs",
        "Creates (or reuses) the virtual environment, installs torch from the planned index and checks "
        "that the planned build landed, then builds each extension without build isolation in that "
        "env, against that torch, for exactly the planned archs (through the wheel cache), installs "
        "the recipe's packages, verifies the imports and writes the lock file. Every step shows live "
        "progress; -v streams the installers' and compilers' output, -q prints only the final line. "
        "Run it again after a failure: what is done is kept. Pointed at an env gpuenv did not create "
        "(--python, or --venv at a conda env or another tool's venv) it builds into it against the torch "
        "there, never replacing it, and puts the env back as it was if setup fails.",
        f"{_RECIPE_FILES}; gpuenv.lock next to it; NVML; pip's configuration and indexes (as plan); "
        f"{_CACHE_FILES}",
        "the env (--venv, default .venv) and VENV/gpuenv-state.json; logs in VENV/.gpuenv/logs "
        "(setup.log, NAME.log per extension; --work-dir moves them); the wheel cache; gpuenv.lock",
        ("gpuenv setup", "gpuenv setup -r envs/graph.toml --venv graph-env --gpu H100 --dry-run  # what it "
         "would run; changes nothing",
         "gpuenv setup --python /usr/bin/python3  # into a container's Python, against its torch"),
    )),
    Command("doctor", run.doctor, (*ENV, "recipe", "hardware", "gpu", "arch", "cache_dir", "json"),
            CommandHelp(
        "check that an env really runs on this machine's GPUs",
        "Checks an existing environment (made by gpuenv or not) against this machine's GPUs, or the "
        "ones --gpu/--arch/--hardware name: the driver, each GPU, torch's build and whether its "
        "wheel holds code for every GPU, torch.cuda.is_available(), the toolkit that would build "
        "extensions, and each extension of the recipe or lock (imports, archs of its .so files, "
        "built against the torch installed). Each check says ok, warn, fail or skip (with the reason), "
        "and a fix where one is known. Exit 0 when nothing fails, 1 otherwise.",
        f"the env (--venv, default .venv, or --python); {_RECIPE_FILES} and gpuenv.lock, if any; NVML",
        "nothing",
        ("gpuenv doctor", "gpuenv doctor --gpu H100 --json  # an env for GPUs this node does not have",
         "gpuenv doctor --python /opt/conda/bin/python  # a conda env or a container's Python"),
    )),
    Command("init", run.init, ("pyproject", "torch", "extension", "name"), CommandHelp(
        "add gpuenv to this repository, from what it already declares",
        "Reads what the repository in the current directory declares (requirements files through -r, "
        "pyproject.toml's dependencies, extras and requires-python, environment.yml, static setup.py / "
        "setup.cfg requirements, .gitmodules, folders whose setup.py builds a CUDAExtension), prints "
        "where each went with its file and line, and writes a recipe that refers to the repository's "
        "own requirements files, a noxfile.py (gpu-env, gpu-plan, gpu-doctor), a tasks.py (gpuenv's "
        "invoke tasks), a README section and .gitignore lines. It overwrites nothing: a file that "
        "exists is skipped and named, with the lines to add by hand. Then 'nox -s gpu-env' sets the "
        "repository's environment up.",
        "requirements*.txt, pyproject.toml, environment.yml, setup.py, setup.cfg, .gitmodules, "
        "local extension folders, README.md, noxfile.py and tasks.py if they exist",
        "envs/default.toml (or [tool.gpuenv] appended to pyproject.toml), noxfile.py, tasks.py, "
        "README.md, .gitignore (appended)",
        ("gpuenv init", "gpuenv init --extension flash-attn==2.8.3.post2",
         "gpuenv init --pyproject --torch '2.13.*'  # the recipe in pyproject.toml"),
    )),
    Command("export", None, (), CommandHelp(  # a group: its actions are the commands
        "hand the plan to uv, and a set-up env to PEP 751 installers",
        "export uv prints the [tool.uv] settings that make 'uv sync' follow the plan (the torch index of "
        "the variant, the extensions built against the runtime torch with their planned build variables); "
        "export pylock writes a PEP 751 pylock.toml of a set-up env.",
        _RECIPE_FILES + "; for pylock, the env and gpuenv.lock", "stdout, or the file named",
        ("gpuenv export uv --gpu H100", "gpuenv export uv -r envs/llm.toml --gpu A100"),
    )),
    Command("export uv", run.export_uv, (*PLANNING, "write"), CommandHelp(
        "the [tool.uv] settings for uv sync to follow the plan",
        "Plans as 'gpuenv plan' does and prints the [tool.uv] settings that make 'uv sync' reproduce it: "
        "the variant's index as an explicit index with torch and its paired packages sourced from it, the "
        "extensions built without isolation against the runtime torch, each with its planned build "
        "variables. Lines starting with '# note:' say what uv cannot be told. --write merges them into a "
        "pyproject.toml, keeping everything else byte for byte.",
        _RECIPE_FILES, "stdout, or pyproject.toml with --write",
        ("gpuenv export uv --gpu H100", "gpuenv export uv -r envs/graph.toml --arch 8.0,9.0"),
    )),
    Command("export pylock", run.export_pylock, ("venv", "recipe", "output", "cache_dir"), CommandHelp(
        "a pylock.toml (PEP 751) of a set-up env",
        "Writes a PEP 751 lock of the env: every distribution at its installed version with its file and "
        "hash, each built extension as its cached wheel (from gpuenv.lock and the wheel cache). A "
        "distribution whose file is not known is left out and named. 'uv pip install -r pylock.toml' "
        "into a fresh env installs the same distributions without resolving or building.",
        f"the env (--venv, default .venv); gpuenv.lock next to {_RECIPE_FILES}; {_CACHE_FILES}; pip's "
        "indexes for distributions installed without a record of their file",
        "stdout, or the file -o names",
        ("gpuenv export pylock --venv .venv -o pylock.toml", "gpuenv export pylock  # print it"),
    )),
    Command("cache", None, (), CommandHelp(  # a group: its actions are the commands
        "the wheel cache: list, prune, path",
        "Every extension wheel gpuenv builds is kept under a key that captures its ABI (torch's "
        "version and CUDA, the C++11 ABI, Python, platform, archs, nvcc, build knobs). These "
        "commands show where it is, what it holds, and remove what is no longer needed.",
        _CACHE_FILES,
        "the cache (prune only)",
        ("gpuenv cache list --json", "gpuenv cache prune --max-size 50G --dry-run"),
    )),
    Command("cache path", run.cache_path, ("cache_dir",), CommandHelp(
        "print where the cache is",
        "Prints the wheel cache's directory: --cache-dir, else $GPUENV_CACHE_DIR, else "
        "$XDG_CACHE_HOME/gpuenv/wheels or ~/.cache/gpuenv/wheels.",
        "the environment variables above", "nothing",
        ("gpuenv cache path", "gpuenv cache path --cache-dir shared-wheels"),
    )),
    Command("cache list", run.cache_list, ("json", "cache_dir"), CommandHelp(
        "every cached wheel: key, size, age, last use",
        "Lists every wheel in the cache: its key (first 12 hex digits), distribution and version, "
        "the torch and CUDA it was built against, its archs, size, age and last use; then the total. "
        "--json prints the same for scripts: path, total_bytes and one object per entry.",
        _CACHE_FILES, "nothing",
        ("gpuenv cache list", "gpuenv cache list --json"),
    )),
    Command("cache prune", run.cache_prune, ("older_than", "unused_since", "max_size", "dry_run", "json",
                                             "cache_dir"), CommandHelp(
        "remove wheels by age, last use or total size",
        "Removes wheels built more than DAYS ago, not used since a date, and then the least recently "
        "used until the cache fits in SIZE. An entry being built or installed is kept. --dry-run "
        "lists what would go and removes nothing.",
        _CACHE_FILES, "the cache (nothing with --dry-run)",
        ("gpuenv cache prune --older-than 30 --dry-run", "gpuenv cache prune --unused-since 2026-09-01",
         "gpuenv cache prune --max-size 50G  # least recently used first"),
    )),
    Command("cache export", run.cache_export, ("directory", "cache_dir"), CommandHelp(
        "the cached wheels as find-links directories, one per ABI group, for nodes without the cache",
        "Lays the cache's wheels out as DIR/GROUP directories (torch build and archs, e.g. "
        "torch-2.14.1-cu130-sm90), each with an index.html, so 'pip install --no-index --find-links "
        "DIR/GROUP NAME' on a node without a shared file system installs the right build. 'gpuenv plan' "
        "names the group a node needs. It writes only inside DIR and replaces only what an earlier "
        "export wrote: anything else at one of its paths stops it before anything is written.",
        _CACHE_FILES, "DIR",
        ("gpuenv cache export wheelhouse", "gpuenv cache export wheelhouse -q  # only the final line"),
    )),
    Command("cache push", run.cache_push, ("target", "cache_dir"), CommandHelp(
        "upload the cached wheels to a shared cache (pypiserver, devpi, a folder) under their ABI key",
        "Pushes every sound wheel of the wheel cache to URL with the legacy upload API, as twine does: "
        "named with a build tag holding its cache key's digest and with the key packed in its "
        ".dist-info, so two ABIs never share a name. A wheel already there stays (a damaged one under "
        "the same key is replaced). Other machines then set up with --cache-from URL and take the wheel "
        "instead of building it.",
        _CACHE_FILES, "URL (or the folder)",
        ("gpuenv cache push http://cache.lab:8080/simple/",
         "gpuenv cache push /shared/gpuenv-wheels  # a folder any web server can serve"),
    )),
    Command("completion", run.completion, ("shell",), CommandHelp(
        "print the shell code that completes gpuenv's commands (bash, zsh, fish)",
        "Prints the completion code for SHELL, generated from this command's parser by argcomplete: "
        "commands, options and their choices complete with TAB. Load it from your shell's startup "
        "file: eval \"$(gpuenv completion bash)\" in ~/.bashrc, eval \"$(gpuenv completion zsh)\" in "
        "~/.zshrc (after compinit), gpuenv completion fish | source in ~/.config/fish/config.fish.",
        "nothing", "nothing (print only)",
        ("gpuenv completion bash", "gpuenv completion zsh", "gpuenv completion fish"),
    )),
)
COMMAND_BY_KEY = {c.name: c for c in COMMANDS}
#: Each command's help by its name ("cache prune").
HELP = {c.name: c.help for c in COMMANDS}


def _color(args: argparse.Namespace | None) -> str | None:
    return None if args is None else str(args.color)


def _interrupt_on_sigterm() -> None:
    """SIGTERM (a job scheduler's cancel, ``kill``) as Ctrl-C: setup stops its command and puts an adopted
    env back as it was, instead of dying half-way."""
    import signal
    import threading

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)




def main(argv: Sequence[str] | None = None, *, check_dependencies: bool = False) -> int:
    """``gpuenv ARGV``: its exit code. ``check_dependencies`` first checks that this Python has every
    package gpuenv needs (the invoke tasks run it in invoke's Python)."""
    tolerant_streams()
    show_warnings()
    output = Output(sys.stdout)
    sys.stdout = output
    try:
        return _main(argv, output, check_dependencies)
    finally:
        sys.stdout = output.stream


def _main(argv: Sequence[str] | None, output: Output, check_dependencies: bool) -> int:
    parser = build_parser(COMMANDS)
    if "_ARGCOMPLETE" in os.environ:
        # The shell asks for completions (see 'gpuenv completion'): answer and exit.
        import argcomplete

        argcomplete.autocomplete(parser)
    args: argparse.Namespace | None = None
    try:
        args = parser.parse_args(argv)  # --help prints here
        if check_dependencies:
            from gpuenv.api import check_dependencies as check

            check()
        _interrupt_on_sigterm()
        handler = COMMAND_BY_KEY[args.command_key].handler
        assert handler is not None  # argparse asks a group for its action
        code = int(handler(args))
        output.flush()  # a full disk is found here, not at exit
        return code
    except GpuenvError as exc:
        print_error(exc, _color(args))
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `gpuenv plan | head`: the reader left; say nothing more.
        output.drop()
        with contextlib.suppress(OSError):
            sys.stderr.close()
        return EXIT_OK
    except OSError as exc:
        # The net under every write and read: a refusal of the OS is the user's to fix, not a bug.
        error = os_error(exc, output)
        print_error(error, _color(args))
        return error.exit_code
    except SystemExit:  # argparse after --help or a usage error: it ignores a failed write
        if output.failed is not None:
            print_error(os_error(output.failed, output), _color(args))
            return EXIT_BAD_INPUT
        raise
