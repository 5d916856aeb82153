"""Never leave an adopted env half-changed: record it before setup changes it, restore it if setup fails.

Before the first change, setup records every distribution the env holds in a
journal in its work folder (:func:`record`). A setup that fails, or is
interrupted (Ctrl-C, SIGTERM), restores that state before it exits
(:func:`restore`): what it installed is uninstalled, and what it replaced or
removed is installed again at the recorded version. A setup killed outright
leaves its journal behind; the next setup of that env restores it first
(:func:`unfinished`). A setup that succeeds removes the journal (:func:`finished`).
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpuenv.env.targetenv import TargetEnv
from gpuenv.errors import GpuenvError, StepError
from gpuenv.inputs import UnreadableInput, parse_json, read_input
from gpuenv.outputs import make_folders, write_atomic
from gpuenv.runner import Runner
from gpuenv.setup.installer import Installer, InstallOptions

#: The journal of a setup of an adopted env, in its work folder.
JOURNAL = "adopted-env-journal.json"


@dataclass(frozen=True)
class Snapshot:
    """What an adopted env held before a setup changed it."""

    env: str
    python: str
    #: Canonical distribution name → version.
    installed: Mapping[str, str]
    #: The setup that recorded it.
    pid: int
    host: str

    def to_json(self) -> dict[str, Any]:
        return {"env": self.env, "python": self.python, "installed": dict(self.installed),
                "pid": self.pid, "host": self.host}


def record(env: TargetEnv, runner: Runner, work: Path) -> Snapshot:
    """Write what ``env`` holds now into the journal in ``work`` (atomically) and return it."""
    env.changed()  # what it holds now, not what an earlier question found
    snapshot = Snapshot(str(env.path), str(env.python), env.installed(runner), os.getpid(),
                        socket.gethostname())
    make_folders(work)
    write_atomic(work / JOURNAL, json.dumps(snapshot.to_json(), indent=1, sort_keys=True).encode())
    return snapshot


def finished(work: Path) -> None:
    """The setup succeeded: nothing to restore."""
    (work / JOURNAL).unlink(missing_ok=True)


def unfinished(work: Path) -> Snapshot | None:
    """The snapshot of a setup of this env that was killed before it finished, if one was.

    A journal whose setup still runs on this machine is another setup at work
    on the same env: that is an error, not something to restore.
    """
    try:
        text = read_input(work / JOURNAL)
    except UnreadableInput as exc:
        if exc.missing:
            return None
        text = ""
    try:
        data = parse_json(text)
        snapshot = Snapshot(str(data["env"]), str(data["python"]),
                            {str(k): str(v) for k, v in dict(data["installed"]).items()},
                            int(data["pid"]), str(data["host"]))
    except (UnreadableInput, ValueError, KeyError, TypeError) as exc:
        raise StepError(f"{work / JOURNAL}: the record of an unfinished setup cannot be read ({exc})",
                        hint="compare the env with what you expect ('pip freeze'), then delete that "
                        "file") from None
    if snapshot.host == socket.gethostname() and snapshot.pid != os.getpid() and _alive(snapshot.pid):
        raise StepError(f"another gpuenv setup (pid {snapshot.pid}) is changing {snapshot.env}",
                        hint="wait for it to finish; two setups of one env at once would undo each other")
    return snapshot


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def restore(env: TargetEnv, runner: Runner, installer: Installer, snapshot: Snapshot) -> list[str]:
    """Put ``env`` back to ``snapshot``: uninstall what is new or changed, reinstall what was replaced.

    Returns what was done, one line each; raises StepError naming what could
    not be put back (the journal stays, so a later setup tries again).
    """
    before = dict(snapshot.installed)
    env.changed()
    now = env.installed(runner)
    done: list[str] = []
    changed = sorted(n for n, v in now.items() if before.get(n) != v)
    if changed:
        installer.uninstall(env, changed)
        done.append(f"removed {', '.join(f'{n} {now[n]}' for n in changed)}")
    now = env.installed(runner)
    missing = [f"{n}=={v}" for n, v in sorted(before.items()) if now.get(n) != v]
    if missing:
        try:
            installer.install(env, missing, InstallOptions(no_deps=True))
        except GpuenvError as exc:
            raise StepError(f"restoring {env.path} failed: {', '.join(missing)} could not be installed "
                            f"again:\n{exc}", hint=f"install them yourself ({', '.join(missing)})") from exc
        done.append(f"put back {', '.join(missing)}")
    now = env.installed(runner)
    left = sorted(n for n in set(now) | set(before) if now.get(n) != before.get(n))
    if left:
        raise StepError(f"restoring {env.path} left {', '.join(left)} otherwise than before the setup",
                        hint="compare 'pip freeze' with what you expect and fix them by hand")
    return done or ["nothing had changed"]
