"""The command line as users and scripts meet it: -v/-q, colour, gpus, cache --json, prune --dry-run,
completion, and help that teaches.

Each test runs the real command in this process (tests.fakes.gpuenv_main, streams captured); colour
is checked on a real pseudo-terminal, the completion one-liners in a real shell.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gpuenv.cache.key import CacheKey
from gpuenv.cache.wheels import WheelCache
from gpuenv.cli import HELP
from gpuenv.env.abi import EnvAbi
from gpuenv.plan.hardware import Hardware
from gpuenv.probe.machine import with_gpu_override
from tests.fakes import gpuenv_main

KEY = CacheKey(
    name="torch-scatter", version="2.1.2", source_sha256="ab" * 32,
    abi=EnvAbi(python_tag="cp311", platform="linux_x86_64", torch_version="2.13.0+cpu", torch_cuda=None,
               cxx11_abi=True),
    arch_list=(), nvcc_version=None, knobs=(),
)
ANSI = re.compile(r"\x1b\[[0-9;]*m")
REPO = Path(__file__).resolve().parents[3]


def on_a_terminal(*args: str, env: dict[str, str]) -> str:
    """What the command writes to a pseudo-terminal (stdout and stderr both)."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "gpuenv", *args], stdin=follower, stdout=follower,
                            stderr=follower, env=env, close_fds=True)
    os.close(follower)
    chunks = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 1.0)
        if ready:
            try:
                data = os.read(leader, 4096)
            except OSError:  # the terminal closed: the command exited
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    proc.wait(timeout=30)
    os.close(leader)
    return b"".join(chunks).decode()


def terminal_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TERM")}
    env["TERM"] = "xterm"
    env.update(extra)
    return env


@pytest.fixture
def cache(tmp_path: Path) -> WheelCache:
    wheel = tmp_path / "torch_scatter-2.1.2-cp311-cp311-linux_x86_64.whl"
    wheel.write_bytes(b"a wheel" * 1000)
    cache = WheelCache(tmp_path / "cache")
    cache.store(KEY, wheel)
    return cache


# -- scripts can read it --------------------------------------------------------------------------


def test_cache_list_json_describes_every_entry(cache: WheelCache) -> None:
    done = gpuenv_main("cache", "list", "--json", "--cache-dir", str(cache.path))
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    (entry,) = cache.entries()
    assert listed["path"] == str(cache.path) and listed["total_bytes"] == entry.size == 7000
    (item,) = listed["entries"]
    assert item["digest"] == KEY.digest and item["size"] == 7000
    assert item["key"]["name"] == "torch-scatter" and item["key"]["torch_version"] == "2.13.0+cpu"
    assert item["wheel"].endswith("torch_scatter-2.1.2-cp311-cp311-linux_x86_64.whl")
    assert {"created", "last_used"} <= set(item)


def test_prune_dry_run_lists_what_would_go_and_removes_nothing(cache: WheelCache) -> None:
    dry = gpuenv_main("cache", "prune", "--max-size", "1K", "--dry-run", "--cache-dir", str(cache.path))
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines()[0].startswith(f"would remove {KEY.digest[:12]}  torch-scatter 2.1.2")
    assert dry.stdout.splitlines()[-1] == "would remove 1 wheel(s), 0.0 MB (dry run: nothing removed)"
    assert len(cache.entries()) == 1
    as_json = json.loads(gpuenv_main("cache", "prune", "--max-size", "1K", "--dry-run", "--json",
                                "--cache-dir", str(cache.path)).stdout)
    assert as_json["dry_run"] is True and [e["digest"] for e in as_json["entries"]] == [KEY.digest]
    assert len(cache.entries()) == 1
    real = gpuenv_main("cache", "prune", "--max-size", "1K", "--cache-dir", str(cache.path))
    assert real.stdout.splitlines()[-1] == "removed 1 wheel(s), 0.0 MB" and cache.entries() == []


# -- -q and -v ------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["before", "after"])
def test_quiet_prints_only_the_final_line_wherever_it_is_given(cache: WheelCache, where: str) -> None:
    args = ["cache", "list", "--cache-dir", str(cache.path)]
    args = ["-q", *args] if where == "before" else [*args, "-q"]
    done = gpuenv_main(*args)
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout.splitlines() == [f"1 wheel(s), 0.0 MB in {cache.path}"]
    assert len(gpuenv_main("cache", "list", "--cache-dir", str(cache.path)).stdout.splitlines()) == 2


def test_verbose_and_quiet_exclude_each_other() -> None:
    done = gpuenv_main("gpus", "-v", "-q")
    assert done.returncode == 2 and "not allowed with argument" in done.stderr


# -- gpus -----------------------------------------------------------------------------------------


def test_gpus_lists_the_names_gpu_accepts_with_their_compute_capability() -> None:
    done = gpuenv_main("gpus", "h")
    assert done.returncode == 0, done.stderr
    for name in ("H100", "H200", "GH200"):
        assert re.search(rf"^{name} +compute capability 9\.0 ", done.stdout, re.MULTILINE), name
    assert "A100" not in done.stdout
    assert gpuenv_main("gpus", "NVIDIA h-100").stdout.startswith("H100 ")  # matched as --gpu matches
    every = json.loads(gpuenv_main("gpus", "--json").stdout)
    assert {"name": "GTX 1080 Ti", "compute_capability": "6.1", "memory_mib": 11264} in every
    # Each listed name is one --gpu accepts, for a GPU of that compute capability.
    for model in every:
        (gpu,) = with_gpu_override(Hardware(None, None, (), 2, 8192, 4096), model["name"]).gpus
        assert gpu.compute_capability == model["compute_capability"], model


def test_an_unknown_gpu_points_at_gpuenv_gpus() -> None:
    done = gpuenv_main("plan", "--gpu", "GTX 1080", "-r", str(REPO / "envs" / "default.toml"))
    assert done.returncode == 2
    assert "hint: 'gpuenv gpus GTX' lists the GPU names" in done.stderr
    assert "site-packages" not in done.stderr and "gpus.toml" not in done.stderr
    none = gpuenv_main("gpus", "zzz")
    assert none.returncode == 2 and "hint:" in none.stderr



# -- colour ---------------------------------------------------------------------------------------


def test_a_terminal_gets_colour_unless_no_color_or_never() -> None:
    coloured = on_a_terminal("gpus", "h100", env=terminal_env())
    assert ANSI.search(coloured) and "H100" in ANSI.sub("", coloured)
    assert not ANSI.search(on_a_terminal("gpus", "h100", env=terminal_env(NO_COLOR="1")))
    assert not ANSI.search(on_a_terminal("gpus", "h100", "--color", "never", env=terminal_env()))


def test_a_pipe_gets_no_colour_unless_always() -> None:
    assert not ANSI.search(gpuenv_main("gpus", "h100").stdout)
    forced = gpuenv_main("--color", "always", "gpus", "h100", env=terminal_env(NO_COLOR="1"))
    assert ANSI.search(forced.stdout)


def test_errors_are_coloured_on_a_terminal_only() -> None:
    on_tty = on_a_terminal("gpus", "zzz", env=terminal_env())
    assert "\x1b[31;1merror:\x1b[0m" in on_tty
    piped = gpuenv_main("gpus", "zzz")
    assert piped.stderr.startswith("error: no GPU name contains 'zzz'\nhint: ")


# -- completion -----------------------------------------------------------------------------------


def complete(line: str, tmp_path: Path) -> list[str]:
    """What the shell gets for TAB at the end of ``line`` (argcomplete's protocol, as its script speaks)."""
    out = tmp_path / "completions"
    env = {**os.environ, "_ARGCOMPLETE": "1", "_ARGCOMPLETE_SHELL": "bash", "_ARGCOMPLETE_IFS": "\n",
           "COMP_LINE": line, "COMP_POINT": str(len(line)), "COMP_TYPE": "9",
           "_ARGCOMPLETE_STDOUT_FILENAME": str(out)}
    done = subprocess.run([sys.executable, "-m", "gpuenv"], env=env, capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    return [word.strip() for word in out.read_text().split("\n")]


def test_completion_comes_from_the_parser(tmp_path: Path) -> None:
    assert complete("gpuenv ca", tmp_path) == ["cache"]
    assert complete("gpuenv cache pr", tmp_path) == ["prune"]
    assert "--installer" in complete("gpuenv setup --inst", tmp_path)
    assert sorted(complete("gpuenv setup --color ", tmp_path)) == ["always", "auto", "never"]


def gpuenv_on_path(tmp_path: Path) -> dict[str, str]:
    """An environment whose PATH has a `gpuenv` that is this checkout's (the scripts call it by name)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    command = bin_dir / "gpuenv"
    command.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m gpuenv "$@"\n')
    command.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


def test_the_bash_one_liner_completes_gpuenv(tmp_path: Path) -> None:
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash here")
    script = "\n".join([
        'eval "$(gpuenv completion bash)"',
        "complete -p gpuenv",
        # What bash sets before calling the function for TAB after "gpuenv cache pr".
        'COMP_LINE="gpuenv cache pr"; COMP_POINT=${#COMP_LINE}; COMP_WORDS=(gpuenv cache pr); COMP_CWORD=2',
        '_python_argcomplete gpuenv pr cache; echo "reply: ${COMPREPLY[*]}"',
    ])
    done = subprocess.run([bash, "--norc", "-c", script], capture_output=True, text=True, timeout=60,
                          env=gpuenv_on_path(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "_python_argcomplete" in done.stdout and "gpuenv" in done.stdout.splitlines()[0]
    assert done.stdout.splitlines()[-1].strip() == "reply: prune"


def test_the_fish_one_liner_completes_gpuenv(tmp_path: Path) -> None:
    fish = shutil.which("fish")
    if fish is None:
        pytest.skip("no fish here")
    script = 'gpuenv completion fish | source; complete -C "gpuenv ca"'
    done = subprocess.run([fish, "--no-config", "-c", script], capture_output=True, text=True, timeout=60,
                          env=gpuenv_on_path(tmp_path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["cache\tthe wheel cache: list, prune, path"]


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_zsh_and_fish_scripts_call_back_into_gpuenv(shell: str) -> None:
    done = gpuenv_main("completion", shell)
    assert done.returncode == 0 and "gpuenv" in done.stdout and "_ARGCOMPLETE" in done.stdout
    found = shutil.which(shell)
    if found is not None:  # check its syntax where the shell is installed
        check = subprocess.run([found, "-n"], input=done.stdout, capture_output=True, text=True, timeout=60)
        assert check.returncode == 0, check.stderr


# -- help -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", sorted(HELP))
def test_each_command_says_what_it_does_its_files_and_examples(command: str) -> None:
    done = gpuenv_main(*command.split(), "--help")
    assert done.returncode == 0
    text = done.stdout
    assert HELP[command].description.split()[0] in text
    assert re.search(r"^files:\n  reads   .+\n(.+\n)*  writes  ", text, re.MULTILINE), text
    examples = text.split("\nexamples:\n", 1)[1].splitlines()
    assert 2 <= len(examples) <= 3 and all(e.startswith(f"  gpuenv {command}") for e in examples)


# -- every recipe error has a hint ----------------------------------------------------------------


@pytest.mark.parametrize(("body", "hint"), [
    ('[torch]\nversoin = "2.13.0"\n', "hint: write 'version' instead"),
    ('[torch]\nversion = "2.13.0"\ncuda = "cu1x"\n', 'hint: a recipe says it this way: [torch] version = '),
    ('[torch]\nversion = "2.13"\n[[extensions]]\nrequirement = 3\n', "one [[extensions]] table per"),
    ('[packages]\nrequirements = ["x"]\n', 'hint: a recipe says it this way: [torch] version = "2.14.*"'),
    ("[torch\n", "hint: README.md's \"Recipes\" section lists every key"),
])
def test_every_recipe_error_comes_with_a_hint(tmp_path: Path, body: str, hint: str) -> None:
    recipe = tmp_path / "bad.toml"
    recipe.write_text(body, encoding="utf-8")
    done = gpuenv_main("plan", "-r", str(recipe))
    assert done.returncode == 2
    error, hint_line = done.stderr.splitlines()
    assert error.startswith(f"error: {recipe}: ") and hint_line.startswith("hint: ")
    assert hint in hint_line
