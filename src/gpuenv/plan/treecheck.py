"""The tree about to be built, checked against the plan before a long build: pure.

The catalog describes a package by version; a git checkout (every apex says 0.1), a fork or a
version newer than the catalog is what its setup.py says. Setup reads the build files of the
tree it fetched (:mod:`gpuenv.plan.buildfiles`, never running them) and this module says what
in them cannot build on this plan: a hard-coded ``-std=c++NN`` older than torch's headers
require, a hard-coded ``-gencode`` the chosen nvcc cannot compile, an nvcc the setup.py
refuses. Only what holds for certain under the build's own environment and options is a
problem; what depends on something unknown is a note.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from packaging.version import Version

from gpuenv.plan import knowledge
from gpuenv.plan.buildfiles.conditions import Context
from gpuenv.plan.buildfiles.facts import BuildFacts


@dataclass(frozen=True)
class TreeVerdict:
    #: What makes the build fail for certain, each naming the file and line.
    problems: tuple[str, ...] = ()
    #: What may: depends on what the files do not say.
    notes: tuple[str, ...] = ()


def _version(text: str | None) -> Version | None:
    if not text:
        return None
    try:
        return Version(".".join(str(p) for p in knowledge.version_tuple(text)[:2]))
    except ValueError:  # InvalidVersion, or more digits than int() converts
        return None


def check_tree(
    facts: BuildFacts,
    *,
    name: str,
    env: Mapping[str, str],
    build_options: tuple[str, ...],
    nvcc: str | None,
    torch_version: str | None,
    torch_cxx: int | None,
    compiles_cuda: bool,
) -> TreeVerdict:
    """What in ``facts`` cannot build with this nvcc, torch and build environment."""
    ctx = Context(nvcc=_version(nvcc), torch=_version(torch_version), env=dict(env),
                  options=frozenset(build_options), gpu=None)
    problems: list[str] = []
    notes: list[str] = []
    stable = [s for s in facts.stable_abi if s.condition.value(ctx) is True]
    if torch_cxx is not None and not stable:
        for flag in facts.std_flags:
            if flag.std >= torch_cxx:
                continue
            holds = flag.condition.value(ctx)
            text = (f"{name}'s {flag.where} compiles with -std=c++{flag.std} and torch "
                    f"{torch_version or ''}'s headers require C++{torch_cxx}").replace("  ", " ")
            if holds is True:
                problems.append(text)
            elif holds is None:
                notes.append(f"{text}, if that code runs")
    if compiles_cuda and nvcc is not None:
        for code in facts.gencodes:
            support = knowledge.arch_support(code.arch)
            if support is None or support.nvcc_can_compile(nvcc):
                continue
            holds = code.condition.value(ctx)
            text = f"{name}'s {code.where} compiles sm_{code.arch.replace('.', '')}, which nvcc {nvcc} cannot"
            if holds is True:
                problems.append(text)
            elif holds is None:
                notes.append(f"{text}, if that code runs")
        for minimum in facts.min_nvcc:
            if knowledge.version_tuple(nvcc)[:2] >= knowledge.version_tuple(minimum.version)[:2]:
                continue
            if minimum.condition.value(ctx) is not False:
                problems.append(f"{name}'s {minimum.where} refuses nvcc {nvcc} (it needs {minimum.version})")
    return TreeVerdict(tuple(dict.fromkeys(problems)), tuple(dict.fromkeys(notes)))
