"""Every command the README shows in its code blocks is run here, and every example of `gpuenv CMD --help`.

`gpuenv setup`, `nox -s gpu-env` and `invoke setup` run with --dry-run added:
their real runs (real venvs, real builds) are the integration tests in
tests/integration. `pip install …` and the test commands themselves are what .ci/run
does. A README command this file does not know how to run fails the test.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakes import clean_env, gpuenv

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"

#: Commands not run here, and where they are run instead.
RUN_ELSEWHERE = {
    "pip install": ".ci/run and the nox sessions install gpuenv this way",
    "nox -s tests": "the test command itself: .ci/run runs it",
    "pytest": "the test commands themselves",
    "cd": "part of the `gpuenv init` example, run below in a fresh directory",
}


def readme_commands() -> list[str]:
    """Command lines of the README's plain code blocks (``` with no language), comments dropped."""
    commands, in_block, plain = [], False, False
    for line in README.read_text(encoding="utf-8").splitlines():
        fence = re.match(r"^```(\S*)", line)
        if fence:
            in_block, plain = (not in_block), fence.group(1) == ""
            continue
        if not (in_block and plain):
            continue
        text = re.sub(r"\s+#.*$", "", line.strip().removeprefix("$ ")).strip()
        if re.match(r"^(gpuenv|nox|invoke|pip|pytest|cd|GPUENV_\w+=\S+ nox)\b", text):
            commands.append(text)
    return commands


def elsewhere(command: str) -> bool:
    return any(command.startswith(prefix) for prefix in RUN_ELSEWHERE)


def sandbox(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A working directory with the shipped recipes, and an environment that touches nothing of the user's."""
    work = tmp_path / "work"
    shutil.copytree(REPO / "envs", work / "envs")
    env = clean_env(GPUENV_CACHE_DIR=str(tmp_path / "cache"))
    return work, env


#: Interpreters the examples name (a conda env's, a container's) that this machine need not have: the
#: tests' own Python stands in for them (an env gpuenv did not create, without torch).
STAND_INS = ("/opt/conda/bin/python", "/usr/bin/python3")


def with_dry_run(args: list[str]) -> list[str]:
    return args if "--dry-run" in args else [*args, "--dry-run"]


def run_gpuenv(command: str, work: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    words = [sys.executable if w in STAND_INS else w for w in shlex.split(command)]
    out_file = None
    if ">" in words:
        at = words.index(">")
        words, out_file = words[:at], work / words[at + 1]
    args = words[1:]
    if args[0] == "setup":
        args = with_dry_run(args)
    if args[0] == "init":
        work = work / ("pyproject-repo" if "--pyproject" in args else "research-repo")
        work.mkdir(exist_ok=True)
        if "--pyproject" in args:
            (work / "pyproject.toml").write_text('[project]\nname = "my-research"\nversion = "0"\n')
    if args[:2] == ["export", "pylock"] and not (work / ".venv").exists():
        # A set-up env stands in as an empty one: the lock of what it holds (nothing) is written.
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(work / ".venv")], check=True)
    if args[:2] == ["export", "uv"] and "--write" in args:
        (work / "pyproject.toml").write_text('[project]\nname = "my-research"\nversion = "0"\n')
    done = gpuenv(*args, cwd=work, env=env, timeout=300)
    if out_file is not None:
        out_file.write_text(done.stdout)
    return done


def help_examples() -> list[str]:
    """The examples every command's --help shows (the lines under "examples:"), comments dropped."""
    from gpuenv.cli import HELP, main

    examples = []
    for command in sorted(HELP):
        shown = io.StringIO()
        with contextlib.redirect_stdout(shown), pytest.raises(SystemExit):
            main([*command.split(), "--help"])
        section = shown.getvalue().split("\nexamples:\n", 1)[1]
        examples += [re.sub(r"\s+#.*$", "", line).strip() for line in section.splitlines() if line.strip()]
    return examples


FAST = [c for c in readme_commands() if c.startswith("gpuenv ")]
SLOW = [c for c in readme_commands() if not c.startswith("gpuenv ") and not elsewhere(c)]


def test_the_readme_shows_commands_and_each_is_run_somewhere() -> None:
    commands = readme_commands()
    assert commands[0].startswith("nox -s gpu-env") and commands[1] == "nox -s tests"
    runnable = ("gpuenv ", "nox ", "invoke ", "GPUENV_")
    unknown = [c for c in commands if not (c.startswith(runnable) or elsewhere(c))]
    assert unknown == [], f"README commands no test runs: {unknown}"


def test_every_gpuenv_command_of_the_readme_runs(tmp_path: Path) -> None:
    work, env = sandbox(tmp_path)
    for command in FAST:
        check_runs(command, work, env)


def test_every_example_of_the_help_texts_runs(tmp_path: Path) -> None:
    examples = help_examples()
    assert len(examples) >= 2 * 10 and all(e.startswith("gpuenv ") for e in examples)
    work, env = sandbox(tmp_path)
    for command in dict.fromkeys(examples):
        if command not in FAST:  # the README's own commands run above
            check_runs(command, work, env)


def check_runs(command: str, work: Path, env: dict[str, str]) -> None:
    done = run_gpuenv(command, work, env)
    allowed = {0, 1} if command.startswith("gpuenv doctor") else {0}
    assert done.returncode in allowed, f"{command}\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr, command
    if command.startswith("gpuenv doctor"):
        verdicts = r"^(ok|warn|fail|skip) |: \d+ failed, \d+ warnings?"
        assert re.search(verdicts, done.stdout, re.MULTILINE) or '"checks"' in done.stdout, command


def _main_command(work: Path, env: dict[str, str], venv: Path, tmp_path: Path) -> None:
    # nox runs sessions in the noxfile's directory: name the sandbox's copy of the default
    # recipe, so the lock is written there and not into the checkout.
    recipe = work / "envs" / "default.toml"
    done = subprocess.run(
        [sys.executable, "-m", "nox", "-f", str(REPO / "noxfile.py"), "--envdir", str(tmp_path / "nox"),
         "-s", "gpu-env", "--", "-r", str(recipe), "--venv", str(venv)],
        cwd=work, env=env, capture_output=True, text=True, timeout=1800,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    check = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import torch, torchvision; print(torch.__version__)"],
        capture_output=True, text=True, check=False,
    )
    assert check.returncode == 0, check.stderr
    assert check.stdout.startswith("2.14.")
    assert (work / "envs" / "gpuenv.lock").exists()


def test_nox_l_and_the_readmes_say_the_same_benchmark_duration() -> None:
    """`nox -l` shows the bench session's docstring; the READMEs tell the same time."""
    noxfile = (REPO / "noxfile.py").read_text(encoding="utf-8")
    session = re.search(r'def bench\(.*?\n\s+"""(.*?)"""', noxfile, re.DOTALL)
    assert session is not None
    said = {
        "noxfile.py": re.findall(r"about (\d+) min", session.group(1)),
        "README.md": re.findall(r"`nox -s bench`; about (\d+) min", README.read_text(encoding="utf-8")),
        "benchmarks/README.md": re.findall(r"everything: about (\d+) min",
                                           (REPO / "benchmarks" / "README.md").read_text(encoding="utf-8")),
    }
    assert all(len(found) == 1 for found in said.values()), said
    assert len({found[0] for found in said.values()}) == 1, said
