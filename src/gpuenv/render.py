"""Plain-text views of the library's records, for the front ends: the one place they take text from.

The hardware and the plan are drawn here; the doctor's report, init's summary and a wheelhouse export are
drawn by their own packages and named here, so a front end imports only the API and this.
"""

from __future__ import annotations

from gpuenv.cache.wheelhouse import export_text as wheelhouse_text
from gpuenv.doctor.report import report_text
from gpuenv.init.writer import init_text
from gpuenv.plan.envplan import Plan
from gpuenv.plan.hardware import Hardware, Toolkit

__all__ = ["hardware_text", "init_text", "plan_summary", "plan_text", "report_text", "toolkit_text",
           "wheelhouse_text"]


def hardware_text(hw: Hardware) -> str:
    lines = []
    if hw.driver_version is None and not hw.gpus:
        lines.append("driver      none (no NVIDIA driver or library found): no GPU")
    elif hw.driver_version is None:
        lines.append(f"driver      unknown (GPUs from {hw.source})")
    else:
        lines.append(f"driver      {hw.driver_version} (supports CUDA {hw.cuda_driver_version or 'unknown'})")
    if hw.gpus:
        lines.append("gpus")
        for g in hw.gpus:
            memory = f", {g.memory_total_mib} MiB" if g.memory_total_mib else ""
            uuid = f", {g.uuid}" if g.uuid else ""
            lines.append(f"  [{g.index}] {g.name}: compute capability {g.compute_capability}{memory}{uuid}")
    else:
        lines.append("gpus        none")
    if hw.toolkits:
        lines.append("toolkits")
        lines.extend(f"  nvcc {t.nvcc_version} at {t.nvcc} (CUDA_HOME {t.root})"
                     + (" [provisioned from PyPI]" if t.source == "pypi" else "") for t in hw.toolkits)
    else:
        lines.append("toolkits    none found (CUDA_HOME, PATH, /usr/local/cuda*)")
    lines.append(f"cpus        {hw.cpu_count}")
    lines.append(
        f"memory      {hw.memory_total_mib} MiB total, {hw.memory_available_mib} MiB available"
    )
    return "\n".join(lines)


def toolkit_text(toolkit: Toolkit) -> str:
    """"nvcc 13.0.88", or for a toolkit from PyPI "CUDA 13.0 from PyPI (...)"."""
    if toolkit.source != "pypi":
        return f"nvcc {toolkit.nvcc_version}" + (", given by --toolkit" if toolkit.source == "path" else "")
    if not toolkit.release:
        return f"CUDA {toolkit.version} from PyPI (provisioned into the toolkit cache)"
    return f"CUDA {toolkit.version} from PyPI (in the toolkit cache: nvcc {toolkit.release})"


def plan_summary(plan: Plan) -> str:
    """One line: the torch build, its paired packages, the archs ("torch 2.5.1+cu121 (cu121) with …")."""
    torch = f"torch {plan.torch_build}" if plan.torch_build else plan.torch
    packages = f" with {', '.join(plan.torch_packages)}" if plan.torch_packages else ""
    return f"{torch} ({plan.variant}){packages}, archs {' '.join(plan.arch_list) or '-'}"


def plan_text(plan: Plan) -> str:
    lines = [f"recipe      {plan.recipe} ({plan.env_name})", f"hardware    {plan.hardware_source}"]
    lines.append(f"variant     {plan.variant}" + (f" (CUDA {plan.cuda})" if plan.cuda else ""))
    given = plan.given_torch
    if given is not None and plan.index_url is None and plan.torch == given.requirement:
        # Adopted: nothing to install, the torch there is what the plan is for.
        archs = ", ".join(given.arch_list) or ("-" if given.cuda is None else "unknown")
        cxx = f", headers need C++{given.cxx_standard}" if given.cxx_standard else ""
        lines.append(f"torch       {given.version} given ({given.where}): archs {archs}{cxx}; never replaced"
                     + "".join(f"; adds {p}" for p in plan.torch_packages))
    else:
        newest = f" ({plan.torch_build})" if plan.torch_build else ""
        lines.append(f"torch       {plan.torch}{newest}" + "".join(f", {p}" for p in plan.torch_packages))
        lines.append(f"index       {plan.index_url or '(the ordinary index)'}: {plan.index_note}")
    lines.append(f"archs       {' '.join(plan.arch_list) or '-'}")
    if plan.toolkit is not None:
        lines.append(f"toolkit     {toolkit_text(plan.toolkit)} (CUDA_HOME {plan.toolkit.root})")
    if plan.build_env:
        lines.append("build env   " + " ".join(f"{k}={v}" for k, v in plan.build_env.items()))
    if plan.extensions:
        lines.append("extensions")
        for ext in plan.extensions:
            lines.append(f"  {ext.action:<6} {ext.requirement}: {ext.reason}")
            own = {k: v for k, v in ext.env.items() if plan.build_env.get(k) != v}
            if own:
                lines.append("         " + " ".join(f"{k}={v}" for k, v in own.items()))
            if ext.action == "build" and (plan.cache_from or (ext.prebuilt and plan.prebuilt)):
                lines.append("         wheel from: " + "; ".join(plan.wheel_sources(ext)))
    if plan.packages:
        lines.append("packages    " + ", ".join(plan.packages))
    if plan.repo is not None:
        build = plan.repo_build
        why = f": {build.reason}" if build is not None else ""
        lines.append(f"repository  {plan.repo.requirement}{why}")
        env = build.env if build is not None else {}
        own = {k: v for k, v in env.items() if plan.build_env.get(k) != v}
        if own:
            lines.append("            " + " ".join(f"{k}={v}" for k, v in own.items()))
    group = plan.wheelhouse_group
    if group is not None and any(e.action != "skip" for e in plan.extensions):
        lines.append(f"wheelhouse  {group} (from 'gpuenv cache export DIR': "
                     f"pip install --no-index --find-links DIR/{group} …)")
    lines.extend(_knowledge_lines(plan))
    if plan.reasons:
        lines.append("why")
        lines.extend(f"  - {r}" for r in plan.reasons)
    if plan.passed_over:
        lines.append("passed over (newer torch the recipe allows)")
        lines.extend(f"  - {line}" for line in plan.passed_over)
    if plan.warnings:
        lines.append("warnings")
        lines.extend(f"  ! {w}" for w in plan.warnings)
    return "\n".join(lines)


def _knowledge_lines(plan: Plan) -> list[str]:
    """Where the torch facts came from, with their dates, and what was assumed for the chosen release."""
    lines = [f"{'knowledge' if i == 0 else '':<11} {s.text()}" for i, s in enumerate(plan.knowledge.sources)]
    if plan.knowledge.assumed:
        lines.append(f"assumed     torch {plan.torch_release} is newer than gpuenv's data; taken from "
                     "an older release:")
        lines.extend(f"  - {fact}" for fact in plan.knowledge.assumed)
    return lines
