"""The steps that differ in an env gpuenv adopted (one it did not create, see :mod:`gpuenv.setup.adopt`).

- **target environment**: refuse an externally managed Python unless told,
  restore what a killed earlier setup left half-changed, record what the env
  holds (the journal :mod:`gpuenv.setup.rollback` restores from), and pin torch
  and its companions for every install that follows;
- **base**: the torch there is given: it is checked to be the one planned for,
  and nothing replaces it (only torch packages the recipe lists and the env
  lacks are added, torch pinned);
- **runtime builds**: gpuenv writes no ``.pth`` into an env that is not its
  own; the step says what to export instead.

:func:`roll_back` puts the env back when a later step fails or is interrupted.
"""

from __future__ import annotations

import os
import shlex
import socket

from gpuenv.errors import GpuenvError, UnsatisfiableError, VerifyError
from gpuenv.plan.envplan import Plan
from gpuenv.probe.interpreters import python_satisfies
from gpuenv.setup.adopt import Target, check_externally_managed, describe, pins
from gpuenv.setup.context import Context, Reporter, Step, load_state
from gpuenv.setup.installer import InstallOptions
from gpuenv.setup.rollback import Snapshot, finished, record, restore, unfinished


def adopt_step() -> Step:
    return Step("target environment (adopted)", _adopt)


def _adopt(ctx: Context) -> str:
    options, runner = ctx.options, ctx.runner
    env = options.target()
    interpreter = env.interpreter(runner)
    check_externally_managed(env, interpreter, allowed=options.break_system_packages)
    if ctx.plan.python is not None and not python_satisfies(interpreter.version, ctx.plan.python):
        raise UnsatisfiableError(
            f"{env.path} has Python {interpreter.version}; the recipe asks for python = {ctx.plan.python!r}",
            hint="point gpuenv at an env with that Python, or change the recipe's [env] python")
    ctx.env, ctx.created = ctx.view(env), False
    env = ctx.env
    ctx.state = load_state(options.state_dir)
    said = describe(Target(env, adopted=True, named=str(env.path)), interpreter)
    left = unfinished(options.work)
    if left is not None:
        installer = ctx.installer.adopting(pins(left.installed),
                                           break_system_packages=options.break_system_packages)
        ctx.reporter.done(f"an earlier setup of {env.path} (pid {left.pid}) was stopped before it finished: "
                          "restoring what it changed")
        said += "; restored after an unfinished setup: " + "; ".join(restore(env, runner, installer, left))
    ctx.snapshot = runner.perform(
        f"record what {env.path} holds in {options.work}: setup puts it back if it fails",
        lambda: record(env, runner, options.work),
        lambda: Snapshot(str(env.path), str(env.python), env.installed(runner), os.getpid(),
                         socket.gethostname()))
    kept = pins(ctx.snapshot.installed)
    ctx.installer = ctx.installer.adopting(kept, break_system_packages=options.break_system_packages)
    names = ", ".join(line.split("==")[0] for line in kept[:4]) + ("…" if len(kept) > 4 else "")
    return said + (f"; pinned for every install: {names}" if kept else "")


def given_torch_step(plan: Plan) -> Step:
    facts = plan.given_torch
    assert facts is not None

    def run(ctx: Context) -> str:
        env = ctx.target
        info = env.facts(ctx.runner)
        if info is None or info.version != facts.version:
            now = "no torch" if info is None else f"torch {info.version}"
            raise VerifyError(f"{env.path} holds {now}, not the torch {facts.version} the plan was made for",
                              hint="something changed the env since: run 'gpuenv setup' again to plan anew")
        ctx.torch, ctx.facts = info, facts
        added = ""
        if plan.torch_packages:
            pinned = InstallOptions(constraints=[info.requirement])
            ctx.installer.install(env, list(plan.torch_packages), pinned)
            added = f"; added {', '.join(plan.torch_packages)}"
        return f"torch {info.version} is given (CUDA {info.cuda or 'none'}): used as it is{added}"

    return Step(f"base: torch {facts.version} (given)", run)


def runtime_note_step() -> Step:
    """What kernels compiled at run time need, said instead of written into an env that is not gpuenv's."""

    def exports(ctx: Context) -> str:
        return " ".join(f"{k}={shlex.quote(v)}" for k, v in ctx.plan.runtime_env.items())

    def run(ctx: Context) -> str:
        return (f"no _gpuenv_runtime.pth written into {ctx.options.venv} (not gpuenv's); for kernels "
                f"compiled at run time: export {exports(ctx)}")

    return Step("runtime builds", run)


def roll_back(ctx: Context, reporter: Reporter, why: BaseException) -> None:
    """Put the adopted env back as the journal recorded it (what fails here is said, not raised)."""
    if ctx.snapshot is None or ctx.env is None:
        return
    what = "interrupted" if isinstance(why, KeyboardInterrupt) else "failed"
    reporter.step(f"setup {what}: restoring {ctx.env.path} as it was")
    try:
        lines = restore(ctx.env, ctx.runner, ctx.installer, ctx.snapshot)
    except GpuenvError as exc:
        reporter.done(f"error: {exc}" + (f"\nhint: {exc.hint}" if exc.hint else "")
                      + f"\nthe record stays in {ctx.options.work}: the next setup tries again")
        return
    finished(ctx.options.work)
    reporter.done(f"restored: {'; '.join(lines)}")


def done(ctx: Context) -> None:
    """The setup succeeded: the journal goes."""
    if ctx.snapshot is not None:
        ctx.runner.perform("", lambda: finished(ctx.options.work), lambda: None)
