"""What the setup steps share: the options, the reporter, the context they fill in, a Step.

:mod:`gpuenv.setup.run` orders and runs the steps; :mod:`gpuenv.setup.extension`
holds the extension step. Both fill one :class:`Context` as they go: the
target env, the torch that landed, the state file, what was built, reused,
taken from the cache and locked. A dry run runs the same steps with a
recording runner (:attr:`Context.dry_run`, :mod:`gpuenv.setup.dryrun`).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from gpuenv.cache.shared import CacheSource, SharedCache
from gpuenv.env.targetenv import TargetEnv, TorchInfo
from gpuenv.inputs import UnreadableInput, read_json
from gpuenv.lock.lockfile import LockedEnv, LockedExtension
from gpuenv.outputs import write_atomic
from gpuenv.plan.envplan import Plan
from gpuenv.plan.giventorch import TorchFacts
from gpuenv.plan.hardware import Toolkit
from gpuenv.runner import RecordingRunner, SubprocessRunner, perform
from gpuenv.setup.dryrun import PlannedEnv, RecordingInstaller, expected_torch
from gpuenv.setup.installer import Installer
from gpuenv.setup.rollback import Snapshot

STATE_FILE = "gpuenv-state.json"


class Reporter(Protocol):
    """How setup talks to whoever runs it."""

    def step(self, text: str) -> None:
        """A new step begins (one line)."""

    def status(self, text: str) -> None:
        """Progress inside a long step: the current phase or last output line."""

    def done(self, text: str) -> None:
        """A step finished (one line)."""


class SilentReporter:
    def step(self, text: str) -> None:
        pass

    def status(self, text: str) -> None:
        pass

    def done(self, text: str) -> None:
        pass


@dataclass(frozen=True)
class SetupOptions:
    venv: Path
    #: "auto" (uv where it is available, else pip), "pip" or "uv".
    installer: str = "auto"
    #: Where logs, sources and built wheels go (default: <venv>/.gpuenv).
    work_dir: Path | None = None
    #: Check the plan's indexes answer before installing (off for --torch-index config).
    preflight: bool = True
    preflight_timeout: float = 5.0
    #: The wheel cache; None builds every extension (--no-cache).
    cache_dir: Path | None = None
    #: Where the lock file is written (and read for the no-op check); None: no lock.
    lock_file: Path | None = None
    #: sha256 of the recipe file, part of the lock's fingerprint.
    recipe_sha256: str = ""
    #: The env's interpreter where it is not ``venv/bin/python`` (a conda env's, a system Python).
    python: Path | None = None
    #: gpuenv did not create the env: its torch is given, what setup changes is undone if it fails,
    #: and gpuenv's own files (logs, state) stay out of it (``work_dir`` says where they go).
    adopted: bool = False
    #: Hand the installers their own PEP 668 override (--break-system-packages).
    break_system_packages: bool = False
    #: Shared caches asked before building (--cache-from); ``push`` puts built wheels on them.
    cache_from: tuple[CacheSource, ...] = ()
    push: bool = False
    #: Whether a publisher's prebuilt wheel may stand in for a build, after an audit.
    prebuilt: bool = True

    @property
    def work(self) -> Path:
        return self.work_dir or self.venv / ".gpuenv"

    @property
    def state_dir(self) -> Path:
        """Where the state file lives: in the env, unless gpuenv adopted it."""
        return self.work if self.adopted else self.venv

    def target(self) -> TargetEnv:
        """The env, as it is now (nothing is touched)."""
        return TargetEnv.at(self.venv, self.python)


@dataclass
class Context:
    """What the steps share while they run."""

    plan: Plan
    options: SetupOptions
    reporter: Reporter
    runner: SubprocessRunner
    installer: Installer
    env: TargetEnv | None = None
    #: True when this run created the env (it holds nothing yet).
    created: bool = False
    #: The torch the steps build against: read from its files after the base step,
    #: then as verify's import of it found it.
    torch: TorchInfo | None = None
    state: dict[str, Any] = field(default_factory=dict)
    built: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    locked: list[LockedExtension] = field(default_factory=list)
    #: This env's entry in the lock file as the run found it (None: no lock, or no entry yet).
    prior: LockedEnv | None = None
    #: The toolkit the builds use, once the toolkit step provisioned it (else the plan's).
    toolkit: Toolkit | None = None
    #: What a step holds until setup ends (the toolkit cache's shared lock).
    resources: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    #: The plan made again for the torch that landed (observed beats shipped); None: the plan stands.
    replan: Callable[[TorchFacts], Plan] | None = None
    #: The torch that landed as its files say (arch list, C++ standard…), once the base step read it.
    facts: TorchFacts | None = None
    #: The plan as setup was handed it: what a rerun compares (the lock's fingerprint) is made of it.
    planned: Plan | None = None
    #: What an adopted env held before this setup changed it (restored if setup fails).
    snapshot: Snapshot | None = None
    #: The shared caches' client, made at the first lookup (a server found down stays skipped).
    shared: SharedCache | None = None

    @property
    def dry_run(self) -> bool:
        """Whether this is ``--dry-run``: commands are recorded, nothing is changed."""
        return isinstance(self.runner, RecordingRunner)

    def view(self, env: TargetEnv, *, made_with: str | None = None) -> TargetEnv:
        """The env the steps work on: ``env``, or in a dry run the env as the recorded commands leave it
        (``made_with``: the interpreter a recorded command makes it with)."""
        if not self.dry_run:
            return env
        seeds = self.installer.seeds_pip() if isinstance(self.installer, RecordingInstaller) else True
        return PlannedEnv(env.path, None if env.is_venv or made_with else env.python, made_with=made_with,
                          expected=expected_torch(self.plan), seeds_pip=seeds)

    @property
    def build_toolkit(self) -> Toolkit | None:
        return self.toolkit or self.plan.toolkit

    @property
    def target(self) -> TargetEnv:
        assert self.env is not None, "the target env step runs first"
        return self.env

    def log(self, name: str) -> Path:
        return self.options.work / "logs" / f"{name}.log"

    def save_state(self) -> None:
        path = self.options.state_dir / STATE_FILE
        data = json.dumps(self.state, indent=2, sort_keys=True).encode("utf-8")
        # write_atomic: a fresh temporary name, never a fixed one a link may already stand at.
        # gpuenv's own record: a dry run keeps it to itself.
        perform(self.runner, "", lambda: write_atomic(path, data), lambda: None)


@dataclass(frozen=True)
class Step:
    """A step of setup: its title and what it does (recorded, not done, in a dry run); ``run`` returns
    the outcome in words."""

    title: str
    run: Callable[[Context], str]


def load_state(venv: Path) -> dict[str, Any]:
    try:
        data = read_json(venv / STATE_FILE)
    except UnreadableInput:
        return {}  # a damaged state file only costs the next run the work it would have skipped
    if not isinstance(data, dict):
        return {}
    extensions = data.get("extensions")
    data["extensions"] = ({name: done for name, done in extensions.items() if isinstance(done, dict)}
                          if isinstance(extensions, dict) else {})
    return data
