"""Setup once torch has landed: read what it really is, and plan the rest of the steps for it.

The facts come from :mod:`gpuenv.env.observed` (the reader ``gpuenv doctor`` uses too); when they
contradict the shipped data, the plan is made again for the installed torch (observed beats shipped).
"""

from __future__ import annotations

from dataclasses import replace

from gpuenv.env.observed import observe
from gpuenv.env.targetenv import TorchInfo
from gpuenv.errors import VerifyError
from gpuenv.plan.envplan import Plan
from gpuenv.plan.giventorch import TorchFacts, arch_list_from_names, data_disagreements
from gpuenv.setup.context import Context


def observe_landed(ctx: Context, info: TorchInfo) -> str:
    """Read what the torch in the env really is and plan the rest of the steps for it."""
    facts = observe(ctx.target, ctx.runner, info)
    ctx.facts = facts
    disagreements = data_disagreements(facts)
    for line in disagreements:
        ctx.reporter.done(f"warning: {line}: setup builds for the installed one")
    # A CUDA build the installer's own sources served for a cpu plan stays a cpu plan.
    if ctx.replan is not None and facts.variant == ctx.plan.variant:
        ctx.plan = _planned_again(ctx, facts, disagreements)
    return f"; observed: {describe_facts(facts)}"


def describe_facts(facts: TorchFacts) -> str:
    """"archs 7.5, 8.0 … (torch.cuda.get_arch_list()), headers need C++20": what was read of torch."""
    parts = []
    if facts.cuda is not None:
        archs = ", ".join(facts.arch_list) or "unknown"
        parts.append(f"archs {archs}" + (f" (from {facts.arch_source})" if facts.arch_source else ""))
    parts.append(f"headers need C++{facts.cxx_standard}" if facts.cxx_standard else "C++ standard unknown")
    return ", ".join(parts)


def _planned_again(ctx: Context, facts: TorchFacts, said: tuple[str, ...]) -> Plan:
    """The plan made again for ``facts`` (its extensions, archs, toolkit), keeping how torch was installed."""
    assert ctx.replan is not None
    planned, again = ctx.plan, ctx.replan(facts)
    if again.blockers:
        problems = "; ".join(str(b.error) for b in again.blockers)
        raise VerifyError(
            f"the torch that landed in {ctx.options.venv} cannot serve the plan: {problems}",
            hint="gpuenv's data said otherwise (see the warnings above): force another build with --cuda, "
            "and tell gpuenv's maintainers which data entry is wrong")
    for warning in again.warnings:
        if warning not in planned.warnings and warning not in said:
            ctx.reporter.done(f"warning: {warning}")
    before = {e.name: e for e in planned.extensions}
    for ext in again.extensions:
        old = before.get(ext.name)
        if old is not None and (old.action == "skip") != (ext.action == "skip"):
            ctx.reporter.done(f"{ext.name}: {ext.action} ({ext.reason}) for the installed torch; the data "
                              f"planned {old.action}")
        elif old is not None and old.arch_list != ext.arch_list:
            ctx.reporter.done(f"{ext.name}: built for {', '.join(ext.arch_list) or 'no arch'} for the "
                              f"installed torch; the data planned {', '.join(old.arch_list) or 'no arch'}")
    return replace(again, torch=planned.torch, index_url=planned.index_url, index_note=planned.index_note,
                   torch_packages=planned.torch_packages, torch_version=planned.torch_version,
                   reasons=planned.reasons, passed_over=planned.passed_over)


def arch_list_note(ctx: Context, info: TorchInfo) -> str:
    """Where the imported torch reports its arch list and it is not the one the steps read from its files."""
    facts = ctx.facts
    if facts is None or not info.arch_list:
        return ""
    reported = arch_list_from_names(info.arch_list)
    if reported == facts.arch_list:
        return ""
    return (f"; note: torch.cuda.get_arch_list() says {', '.join(reported)}, the steps read "
            f"{', '.join(facts.arch_list) or 'none'} from {facts.arch_source or 'its files'}")
