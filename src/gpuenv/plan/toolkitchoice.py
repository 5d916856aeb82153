"""The nvcc the CUDA builds use: a toolkit on disk, one given by path, or one to provision from PyPI.

``--toolkit auto|system|pypi|PATH`` is the :class:`ToolkitPolicy`; :func:`choose_toolkit` applies
it to the machine's toolkits for torch's CUDA release, or says what to install. Pure: where the
toolkit cache puts a toolkit from PyPI is the cache's answer (:attr:`ToolkitPolicy.pypi_home`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from gpuenv.errors import ToolkitError
from gpuenv.plan import knowledge
from gpuenv.plan.buildplan import Draft
from gpuenv.plan.hardware import Hardware, Toolkit
from gpuenv.plan.knowledge import TorchRelease
from gpuenv.plan.variants import covers, driver_runs

#: What ``--toolkit`` (and the recipe's ``toolkit``, and GPUENV_TOOLKIT) may say besides a path.
TOOLKIT_MODES = ("auto", "system", "pypi")

#: Where the toolkit cache puts CUDA "13.0" from PyPI (its layout is the cache's: gpuenv.cache.toolkitcache).
ToolkitHome = Callable[[str], str]


@dataclass(frozen=True)
class ToolkitPolicy:
    """Where the nvcc of the CUDA builds may come from (``--toolkit auto|system|pypi|PATH``)."""

    #: "auto": a matching toolkit on disk, else PyPI; "system": on disk only, never a download;
    #: "pypi": the PyPI toolkit of torch's CUDA release; "path": ``given``, as is.
    mode: str = "auto"
    #: The toolkit given by path, its nvcc version already read.
    given: Toolkit | None = None
    #: Where the toolkit cache provisions a release from PyPI (the cache's answer, by CUDA release:
    #: :func:`gpuenv.cache.toolkitcache.toolkit_policy` fills it); None: no toolkit cache named, and a
    #: toolkit from PyPI is planned without a path.
    pypi_home: ToolkitHome | None = None
    #: Who chose the mode, for messages ("--toolkit pypi", "GPUENV_TOOLKIT=system").
    chosen_by: str = ""


def choose_toolkit(
    hardware: Hardware,
    variant: str,
    cuda: str | None,
    drafts: list[Draft],
    release: TorchRelease | None,
    warnings: list[str],
    policy: ToolkitPolicy | None = None,
) -> Toolkit | None:
    """The nvcc the CUDA builds use; raises ToolkitError when nothing the policy allows matches.

    ``auto`` takes a toolkit on disk (the system's or one gpuenv provisioned
    before) of torch's CUDA release, then one of the same major, then the
    PyPI toolkit of that release, to be provisioned by setup.
    """
    policy = policy or ToolkitPolicy()
    builders = [d for d in drafts if d.skip is None and d.compiles_cuda]
    if cuda is None or not builders:
        return None
    exact = [d.spec.name for d in builders if d.entry.toolkit_match == "minor"]
    if policy.mode == "path" and policy.given is not None:
        return _given_toolkit(policy, variant, cuda, builders, exact, hardware, release, warnings)
    chosen = toolkit_on_disk(_allowed(hardware, policy), cuda,
                             minor_may_differ=not exact and policy.mode != "pypi",
                             warnings=warnings)
    if chosen is not None:
        return chosen
    if policy.mode != "system" and cuda in knowledge.pypi_toolkit_versions():
        # Where it goes is the toolkit cache's to say; with none named, the plan cannot say where.
        home = policy.pypi_home(cuda) if policy.pypi_home is not None else ""
        return Toolkit(nvcc=f"{home}/bin/nvcc" if home else "", version=cuda, home=home, source="pypi")
    raise _no_toolkit(variant, cuda, builders, exact, hardware, release, policy)


def _allowed(hardware: Hardware, policy: ToolkitPolicy) -> list[Toolkit]:
    """The toolkits on disk the policy may take: ``system`` skips gpuenv's, ``pypi`` takes only them."""
    if policy.mode == "pypi":
        return [t for t in hardware.toolkits if t.source == "pypi"]
    if policy.mode == "system":
        return [t for t in hardware.toolkits if t.source != "pypi"]
    return list(hardware.toolkits)


def toolkit_on_disk(toolkits: list[Toolkit], cuda: str, *, minor_may_differ: bool,
                    warnings: list[str]) -> Toolkit | None:
    """The toolkit of torch's CUDA among ``toolkits``: the same release, else (if allowed) the same major."""
    want = knowledge.version_tuple(cuda)
    same_major = [t for t in toolkits if t.version_tuple[0] == want[0]]
    matching = [t for t in same_major if t.version_tuple == want]
    if matching:
        return matching[0]
    if same_major and minor_may_differ:
        # nvcc and torch differing in the minor only warns in torch's own check.
        chosen = min(same_major, key=lambda t: abs(t.version_tuple[1] - want[1]))
        warnings.append(f"nvcc {chosen.version} builds for torch's CUDA {cuda}: same major, minors differ")
        return chosen
    return None


def _given_toolkit(
    policy: ToolkitPolicy,
    variant: str,
    cuda: str,
    builders: list[Draft],
    exact: list[str],
    hardware: Hardware,
    release: TorchRelease | None,
    warnings: list[str],
) -> Toolkit:
    given = policy.given
    assert given is not None
    chosen = toolkit_on_disk([given], cuda, minor_may_differ=not exact, warnings=warnings)
    if chosen is None:
        raise _no_toolkit(variant, cuda, builders, exact, hardware, release, policy)
    return chosen


def _no_toolkit(
    variant: str,
    cuda: str,
    builders: list[Draft],
    exact: list[str],
    hardware: Hardware,
    release: TorchRelease | None,
    policy: ToolkitPolicy,
) -> ToolkitError:
    needed = cuda if exact or policy.mode == "pypi" else f"{knowledge.version_tuple(cuda)[0]}.x"
    given = [policy.given] if policy.given is not None else []
    shown = given if policy.mode == "path" else _allowed(hardware, policy)
    found = [f"nvcc {t.version} at {t.nvcc}" for t in shown]
    names = ", ".join(d.spec.name for d in builders)
    why = f" ({', '.join(exact)} needs exactly {cuda})" if exact else ""
    by = f" ({policy.chosen_by})" if policy.chosen_by else ""
    where = {"system": f"on this machine{by}", "pypi": f"from PyPI{by}",
             "path": f"given{by}"}.get(policy.mode, "")
    message = (
        f"the {variant} plan compiles CUDA for {names} and needs nvcc {needed}{why}; "
        f"found{' ' + where if where else ''}: {'; '.join(found) if found else 'no CUDA toolkit'}"
    )
    return ToolkitError(message, needed=needed, found=found,
                        hint=_toolkit_hint(variant, cuda, needed, hardware, release, policy))


def _toolkit_hint(
    variant: str, cuda: str, needed: str, hardware: Hardware, release: TorchRelease | None,
    policy: ToolkitPolicy,
) -> str:
    """Where a toolkit of ``needed`` comes from, and the plans whose toolkit is at hand or on PyPI."""
    on_pypi = cuda in knowledge.pypi_toolkit_versions()
    if on_pypi and policy.mode in ("system", "path"):
        hint = f"let gpuenv provision CUDA {cuda} from PyPI with --toolkit auto (or pypi), or install"
    elif policy.mode == "pypi" and not on_pypi:
        hint = f"PyPI holds no CUDA {cuda} compiler (it has {', '.join(knowledge.pypi_toolkit_versions())}); "
        hint += "install"
    else:
        hint = "install"
    bare = needed.replace(".x", "")
    hint += (f" CUDA toolkit {needed} (the conda package cuda-nvcc={bare}, your cluster's "
             f"cuda/{bare} module, or NVIDIA's runfile) and set CUDA_HOME to its root "
             "or pass --toolkit PATH")
    alternatives = []
    if release is not None:
        for t in hardware.toolkits:
            v = f"cu{t.version.replace('.', '')}"
            # Only a variant that runs on these GPUs and this driver is worth planning instead.
            runs = covers(release, v, hardware.gpus) and driver_runs(hardware, t.version) is not False
            if v in release.variants and v != variant and runs and f"--cuda {t.version}" not in alternatives:
                alternatives.append(f"--cuda {t.version}")
    if alternatives:
        hint += f", or plan for the toolkit you have with {' or '.join(alternatives)}"
    pypi = _pypi_plans(variant, hardware, release) if release is not None and policy.mode != "system" else []
    pypi = [c for c in pypi if f"--cuda {c}" not in alternatives]  # a toolkit on disk needs no download
    if pypi:
        hint += (f", or plan {' or '.join(f'--cuda {c}' for c in pypi)}: gpuenv provisions "
                 f"{'its toolkit' if len(pypi) == 1 else 'their toolkits'} from PyPI")
    return hint


def _pypi_plans(variant: str, hardware: Hardware, release: TorchRelease) -> list[str]:
    """The CUDA releases of ``release``'s variants whose compiler PyPI holds and that run here."""
    plans = []
    for v in sorted(release.variants):
        cuda = knowledge.variant_cuda(v)
        if v == variant or cuda is None or cuda not in knowledge.pypi_toolkit_versions():
            continue
        if covers(release, v, hardware.gpus) and driver_runs(hardware, cuda) is not False:
            plans.append(cuda)
    return plans
