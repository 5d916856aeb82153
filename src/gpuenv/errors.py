"""The one exception tree of gpuenv.

Every error the library raises on purpose is a :class:`GpuenvError`. The CLI's
single error boundary turns it into an ``error:`` line, an optional ``hint:``
line and :attr:`GpuenvError.exit_code`; anything else is a bug and keeps its
traceback. Subclasses carry the data their message is made from, so callers
(tests, the nox session, other tools) can act on it without parsing text; each
kind has a stable :attr:`GpuenvError.code` ("toolkit-missing") and
:meth:`GpuenvError.to_json` gives the code, the message, the hint and the data
(``gpuenv plan --json``'s blockers; README, "JSON output").
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

#: Exit codes of DESIGN.md.
EXIT_OK = 0
EXIT_STEP_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_UNSATISFIABLE = 3


class GpuenvError(Exception):
    """Root of every error gpuenv raises on purpose.

    ``code`` names the kind of problem for scripts (a class may raise several: "driver-too-old" and
    "no-variant" are both NoVariantError); ``details`` are the values the message is made from, by name
    (strings, numbers, lists of them, None): what :meth:`to_json` adds besides the subclass's own data.
    """

    exit_code: int = EXIT_STEP_FAILED
    #: The stable name of this kind of error (kebab-case); never the Python class name.
    code: str = "error"

    def __init__(self, message: str, *, hint: str | None = None, code: str | None = None,
                 **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if code is not None:
            self.code = code
        self.details = details

    def __str__(self) -> str:
        return self.message

    def data(self) -> dict[str, Any]:
        """The values this error is about, by name (a subclass adds the attributes it carries)."""
        return dict(self.details)

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "hint": self.hint, **self.data()}

    def with_hint(self, hint: str | None) -> GpuenvError:
        """The same error (code, data) with another hint."""
        changed = copy.copy(self)
        changed.hint = hint
        return changed


# -- bad input (exit 2) ------------------------------------------------------


class InputError(GpuenvError):
    """Bad input: arguments, a hardware file, an override."""

    exit_code = EXIT_BAD_INPUT
    code = "bad-input"


class RecipeError(InputError):
    """A recipe that cannot be used; names the file and, where known, the key."""

    code = "recipe-invalid"

    def __init__(
        self,
        path: Path | str,
        key: str | None,
        problem: str,
        *,
        suggestion: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.key = key
        self.problem = problem
        self.suggestion = suggestion
        where = f"{self.path}: {key}: " if key else f"{self.path}: "
        message = where + problem
        if suggestion:
            message += f" (did you mean '{suggestion}'?)"
        super().__init__(message, hint=hint or recipe_hint(key, suggestion))

    def data(self) -> dict[str, Any]:
        return {"path": str(self.path), "key": self.key, "problem": self.problem,
                "suggestion": self.suggestion}


#: What each table of a recipe looks like, for the hint of an error in it.
_RECIPE_EXAMPLES = {
    "env": '[env] name = "llm"',
    "torch": '[torch] version = "2.14.*" with optional cuda = "auto" (or "12.6", "cu126", "cpu") and '
             'packages = ["torchvision"]',
    "extensions": 'one [[extensions]] table per extension: requirement = "flash-attn==2.8.3.post2"',
    "packages": '[packages] requirements = ["transformers>=4.40"]',
}


def recipe_hint(key: str | None, suggestion: str | None) -> str:
    """The hint of a recipe error that brings none of its own: every recipe error gets one."""
    if suggestion:
        return f"write '{suggestion}' instead"
    table = (key or "").removeprefix("tool.gpuenv.").split(".")[0].split("[")[0]
    if table in _RECIPE_EXAMPLES:
        return f"a recipe says it this way: {_RECIPE_EXAMPLES[table]} (README, \"Recipes\")"
    return "README.md's \"Recipes\" section lists every key; 'gpuenv init' writes a recipe to start from"


class OutputError(InputError):
    """A file gpuenv was asked to write that it will not or cannot write: a path that leads out of the
    folder it was asked to write, a link to nowhere, a read-only file, a folder where a file goes, or
    whatever the file system refused (exit 2: the target is the user's to fix). Names the path."""

    code = "output-refused"

    def __init__(self, path: Path | str, problem: str, *, hint: str | None = None) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}",
                         hint=hint or "choose another path, or fix this one and rerun")

    def data(self) -> dict[str, Any]:
        return {"path": str(self.path), "problem": self.problem}


class HardwareFileError(InputError):
    """A ``--hardware`` file that is not a probe's JSON."""

    code = "hardware-file-invalid"

    def __init__(self, path: Path | str, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(
            f"{self.path}: {problem}",
            hint="write one on the target machine with 'gpuenv probe --json > FILE'",
        )

    def data(self) -> dict[str, Any]:
        return {"path": str(self.path), "problem": self.problem}


# -- the machine cannot satisfy the recipe (exit 3) ---------------------------


class UnsatisfiableError(GpuenvError):
    """The recipe is fine but this machine (or the hardware asked for) cannot run it."""

    exit_code = EXIT_UNSATISFIABLE
    code = "unsatisfiable"


class UnknownTorchError(UnsatisfiableError):
    """A torch version the compatibility data does not know."""

    code = "unknown-torch"


class NoVariantError(UnsatisfiableError):
    """No PyTorch CUDA variant runs on these GPUs ("no-variant") with this driver ("driver-too-old")."""

    code = "no-variant"


class ToolkitError(UnsatisfiableError):
    """No CUDA toolkit on the build machine matches the planned variant."""

    code = "toolkit-missing"

    def __init__(self, message: str, *, needed: str, found: list[str], hint: str | None = None):
        self.needed = needed
        self.found = found
        super().__init__(message, hint=hint)

    def data(self) -> dict[str, Any]:
        return {"needed": self.needed, "found": list(self.found)}


class ArchError(UnsatisfiableError):
    """A GPU architecture gpuenv does not know ("arch-unknown"), torch's arch list does not accept
    ("arch-not-accepted") or the toolkit cannot compile for ("arch-not-compiled")."""

    code = "arch-unsupported"


class RequiredSkipError(UnsatisfiableError):
    """An extension marked ``required = true`` that the plan would skip."""

    code = "required-skipped"

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason
        super().__init__(
            f"extension {name} is required but cannot be built here: {reason}",
            hint="set required = false in the recipe to skip it instead",
        )

    def data(self) -> dict[str, Any]:
        return {"name": self.name, "reason": self.reason}


class SourceTreeError(UnsatisfiableError):
    """A source tree the env is built from is not there yet (a git submodule not checked out), or a line
    of the repository's requirements files pip refuses: the hint says what to run or fix. Codes:
    "submodule-not-checked-out", "nothing-to-build", "requirement-refused", "headers-missing"."""

    code = "source-tree-incomplete"


class TorchCapError(UnsatisfiableError):
    """Local C++/CUDA code uses an API the torch release removed: no newer torch can compile it."""

    code = "torch-api-removed"


class VisibleGpuError(UnsatisfiableError):
    """A build that compiles CUDA only when torch sees a GPU, planned for GPUs this machine does not show."""

    code = "gpu-not-visible"


# -- probing (exit 1: the machine answered with an error) ---------------------


class ProbeError(GpuenvError):
    """NVML answered with an error that is not simply 'no GPU here'."""

    code = "probe-failed"

    def __init__(self, call: str, problem: str, *, code: int | None = None, hint: str | None = None):
        self.call = call
        self.problem = problem
        #: NVML's return code, where it gave one.
        self.nvml_code = code
        super().__init__(f"NVML {call} failed: {problem}", hint=hint)

    def data(self) -> dict[str, Any]:
        return {"call": self.call, "problem": self.problem, "nvml_code": self.nvml_code}


# -- steps of setup (exit 1) -------------------------------------------------


class StepError(GpuenvError):
    """A step of setup failed (create env, install, build, verify)."""

    code = "step-failed"


class CommandError(StepError):
    """A subprocess exited non-zero."""

    code = "command-failed"

    def __init__(
        self,
        cmd: list[str],
        returncode: int,
        *,
        log_path: Path | None = None,
        tail: str = "",
        message: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.cmd = cmd
        self.returncode = returncode
        self.log_path = log_path
        self.tail = tail
        # A script passed with -c is gpuenv's own (an env query, 100 lines): named, not printed
        # whole above the lines that say what went wrong.
        shown = [arg if "\n" not in arg else f"<a {arg.count(chr(10)) + 1}-line script>" for arg in cmd]
        text = message or f"command failed with exit code {returncode}: {' '.join(shown)}"
        if tail:
            text += "\n" + tail
        if log_path is not None:
            text += f"\nfull log: {log_path}"
        super().__init__(text, hint=hint)

    def data(self) -> dict[str, Any]:
        return {"cmd": list(self.cmd), "returncode": self.returncode,
                "log_path": None if self.log_path is None else str(self.log_path)}


class IndexUnreachableError(StepError):
    """A package index the plan needs does not answer."""

    code = "index-unreachable"

    def __init__(self, url: str, problem: str, *, hint: str | None = None) -> None:
        self.url = url
        self.problem = problem
        super().__init__(f"package index {url} cannot be reached: {problem}", hint=hint)

    def data(self) -> dict[str, Any]:
        return {"url": self.url, "problem": self.problem}


class BuildError(StepError):
    """An extension failed to build; the full output is in ``log_path``."""

    code = "build-failed"

    def __init__(
        self, name: str, log_path: Path | None, problem: str, *, tail: str = "", hint: str | None = None
    ) -> None:
        self.name = name
        self.log_path = log_path
        self.problem = problem
        self.tail = tail
        text = f"building {name} failed: {problem}"
        if tail:
            text += "\n" + tail
        if log_path is not None:
            text += f"\nfull log: {log_path}"
        super().__init__(text, hint=hint)

    def data(self) -> dict[str, Any]:
        return {"name": self.name, "problem": self.problem,
                "log_path": None if self.log_path is None else str(self.log_path)}


class VerifyError(StepError):
    """The environment does not hold what the plan said it would."""

    code = "verify-failed"


class PlanBlockedError(UnsatisfiableError):
    """Several things stop setup at once; each keeps its own message and hint."""

    code = "blocked"

    def __init__(self, errors: list[UnsatisfiableError]) -> None:
        self.errors = errors
        message = f"{len(errors)} things stop this plan:\n" + "\n".join(f"  - {e}" for e in errors)
        hints = [f"  - {e.hint}" for e in errors if e.hint]
        super().__init__(message, hint="\n".join(["one per blocker:", *hints]) if hints else None)

    def data(self) -> dict[str, Any]:
        return {"blockers": [e.to_json() for e in self.errors]}


class GivenTorchError(UnsatisfiableError):
    """A torch that is already in the env (observed, never replaced) cannot serve the plan: no kernels
    for the GPUs ("given-torch-no-kernels"), a driver too old for it ("given-torch-driver-too-old"),
    outside the recipe's version ("given-torch-not-allowed"), a paired package the recipe pins otherwise
    ("given-torch-pair-conflict"), a ROCm build, for AMD GPUs ("given-torch-rocm")."""

    code = "given-torch-unusable"
