"""nox sessions: `nox -s gpu-env` sets up the GPU environment (gpu-plan, gpu-doctor too); `nox -s tests`."""

from __future__ import annotations

import sys
from pathlib import Path

import nox

ROOT = Path(__file__).parent
try:
    from gpuenv.integrations import register_nox_sessions
except ImportError:  # a checkout where gpuenv is not installed next to nox
    sys.path.insert(0, str(ROOT / "src"))
    from gpuenv.integrations import register_nox_sessions

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True

# gpu-env, gpu-plan, gpu-doctor: gpuenv setup / plan / doctor with the args after --,
# gpuenv installed from this checkout.
register_nox_sessions(requirement=str(ROOT))


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite, slow integration tests included (-- -m 'not slow' for the fast tier)."""
    session.install("-e", f"{ROOT}[test]")
    session.run("pytest", *(session.posargs or ["--durations=15"]))


@nox.session(default=False)
def lint(session: nox.Session) -> None:
    """Check style and types (ruff, mypy --strict)."""
    session.install("-e", f"{ROOT}[dev]")
    session.run("ruff", "check", "src", "tests", "noxfile.py", "tasks.py")
    session.run("mypy")


@nox.session(name="check-knowledge", default=False)
def check_knowledge(session: nox.Session) -> None:
    """Check the extension catalog against the packages' own build files; writes docs/knowledge-check.md.

    Reads the sdists from the index pip is configured with. Args after -- go to
    `python -m gpuenv.catalogcheck`: --only NAME, --source NAME=PATH (apex is git-only), --also NAME==VERSION.
    Fails when any fact disagrees; the report is written either way.
    """
    session.install("-e", str(ROOT))
    session.chdir(str(ROOT))
    session.run("python", "-m", "gpuenv.catalogcheck", "--out", "docs/knowledge-check.md", *session.posargs)


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Run the benchmarks (about 100 min on 2 cores; args after -- go to benchmarks/run.py: --only arch)."""
    session.install("-e", str(ROOT), "pypiserver")
    session.run("python", str(ROOT / "benchmarks" / "run.py"), *session.posargs)


@nox.session(name="gpu-check", venv_backend="none", default=False)
def gpu_check(session: nox.Session) -> None:
    """Check gpuenv on this machine's GPUs, offline, with nox's own Python (under 8 min; -- --python PATH)."""
    # No session venv, no install: this runs where nox runs (the small venv benchmarks/gpu/README.md
    # makes from wheels), so it starts on a node without network. Paths are the caller's.
    with session.chdir(session.invoked_from):
        session.run(sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), *session.posargs,
                    external=True)
