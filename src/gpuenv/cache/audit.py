"""The audit a prebuilt extension wheel from elsewhere passes before gpuenv installs it.

A wheel someone else built (flash-attn's release wheels, PyG's per-torch
pages, a lab's own folder) is used instead of a build only when every check
below passes; the first that fails is the reason gpuenv builds instead:

1. **Its name** (before downloading): the distribution and a version the
   requirement allows; a Python tag, ABI tag and platform the env's
   interpreter installs; and what the publisher's naming scheme declares in
   the local version label (:class:`NameScheme`: ``+cu12torch2.7cxx11abiTRUE``):
   the CUDA major of the installed torch, its C++11 ABI flag, and its torch
   (the same release), unless the extension builds against torch's stable ABI
   (``TORCH_TARGET_VERSION``; the catalog's ``stable_abi``): then any torch at
   or above that floor.
2. **Its binaries** (after downloading, read from the files, no tool needed):
   every ``.so`` links the CUDA runtime of torch's major (``libcudart.so.13``)
   or none on a CPU torch; every undefined symbol that libtorch should provide
   (``c10::``, ``at::``, ``torch::``, the stable C shim ``aoti_torch_*``)
   is defined by the installed torch's libraries, as the loader will need
   (a wheel built against another torch or the other C++11 ABI fails here,
   not at ``import`` on a GPU node); and the device code of each ``.so`` (SASS,
   or PTX the driver compiles forward) runs on every planned arch.
3. **Importing it** in the env works: the setup step installs it and imports
   it, and on failure removes it and builds (:mod:`gpuenv.setup.extension`).
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import Tag, compatible_tags, cpython_tags, platform_tags
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import Version

from gpuenv.cache.wheelfile import WheelFileError, check_wheel, extract_binaries
from gpuenv.probe.binaries import BinaryFormatError, CudaCode, read_cuda_code
from gpuenv.probe.elfsymbols import DynamicInfo, defined_among, read_dynamic

#: The undefined symbols libtorch should provide: its C++ namespaces (functions, vtables, typeinfo),
#: the Python binding's THP*, and the stable ABI's C shim.
_TORCH_SYMBOL = re.compile(
    r"^(?:_ZN[rVKRO]*|_ZT[VIS]N)(?:3c10|2at|5torch|6caffe2)|^_Z\d+THP|^THP|^aoti_torch_")
_CUDART = re.compile(r"^libcudart\.so\.(\d+)")
#: Placeholders of a naming scheme, and what each may match in a file name.
_FIELDS = {
    "torch": r"\d+(?:\.\d+)*", "torch_release": r"\d+\.\d+", "torch_nodot": r"\d+",
    "cuda": r"\d+\.\d+", "cuda_nodot": r"\d+", "cuda_major": r"\d+", "variant": r"cpu|cu\d+",
    "cxx11_abi": r"TRUE|FALSE|True|False|1|0",
}


@dataclass(frozen=True)
class Target:
    """What the env and the plan need of an extension's wheel."""

    name: str
    #: The requirement's version specifier ("==2.8.3", ">=2.7"; "" for any).
    specifier: str
    #: The env's interpreter: "3.12" and its ABI tag "cp312".
    python_version: str
    abi_tag: str
    torch_version: str
    torch_cuda: str | None
    cxx11_abi: bool
    #: The archs the plan builds for ("8.0", "9.0"); empty for a build without CUDA code.
    arch_list: tuple[str, ...] = ()
    #: The torch release whose stable ABI the extension targets ("2.10"), or None.
    stable_abi: str | None = None

    @property
    def torch_release(self) -> str:
        return ".".join(str(p) for p in Version(self.torch_version).release[:2])

    def fields(self) -> dict[str, str]:
        """The placeholders of URL and name templates, filled for this env."""
        cuda = self.torch_cuda or ""
        return {
            "torch": Version(self.torch_version).public, "torch_release": self.torch_release,
            "torch_nodot": self.torch_release.replace(".", ""), "cuda": cuda,
            "cuda_nodot": cuda.replace(".", ""), "cuda_major": cuda.split(".")[0],
            "variant": f"cu{cuda.replace('.', '')}" if cuda else "cpu",
            "cxx11_abi": "TRUE" if self.cxx11_abi else "FALSE",
            "python": self.abi_tag, "platform": _plain_platform(),
        }


@dataclass(frozen=True)
class NameScheme:
    """How a publisher's wheel names declare what they were built against: a template of the local
    version label (``cu{cuda_major}torch{torch_release}cxx11abi{cxx11_abi}``); "" when the names say
    nothing (the page they are listed on is per torch and CUDA, as PyG's are)."""

    local: str = ""

    def pattern(self) -> re.Pattern[str]:
        parts, position = [], 0
        for match in re.finditer(r"\{(\w+)\}", self.local):
            if match.group(1) not in _FIELDS:
                raise ValueError(f"naming scheme {self.local!r}: unknown placeholder {{{match.group(1)}}}")
            parts += [re.escape(self.local[position:match.start()]),
                      f"(?P<{match.group(1)}>{_FIELDS[match.group(1)]})"]
            position = match.end()
        return re.compile("".join([*parts, re.escape(self.local[position:])]) + r"\Z")


@dataclass(frozen=True)
class Verdict:
    """The audit's answer: ``problem`` is None when the wheel may be used; ``passed`` lists the checks."""

    file_name: str
    problem: str | None
    passed: tuple[str, ...] = field(default=())


# -- 1. the name --------------------------------------------------------------------------------


def name_problem(file_name: str, target: Target, scheme: NameScheme) -> str | None:
    """Why the wheel named ``file_name`` cannot be the one ``target`` needs, or None."""
    try:
        name, version, _build, tags = parse_wheel_filename(file_name)
    except InvalidWheelFilename:
        return "not a wheel file name"
    if name != canonicalize_name(target.name):
        return f"a wheel of {name}, not {target.name}"
    try:
        if target.specifier and not SpecifierSet(target.specifier).contains(Version(version.public),
                                                                             prereleases=True):
            return f"version {version.public} is not {target.specifier}"
    except InvalidSpecifier:
        return f"the requirement's {target.specifier!r} is not a version specifier"
    supported = supported_tags(target.python_version, target.abi_tag)
    if not any(tag in supported for tag in tags):
        return f"tags {', '.join(sorted(str(t) for t in tags))} do not install on this env ({target.abi_tag})"
    # The label as written: packaging lowercases it ("cxx11abiTRUE" -> "cxx11abitrue").
    return _declared_problem(file_name.split("-")[1].partition("+")[2], target, scheme)


def supported_tags(python_version: str, abi_tag: str) -> frozenset[Tag]:
    """The tags a CPython of ``python_version`` with ``abi_tag`` installs on this machine."""
    major, minor = (int(p) for p in python_version.split(".")[:2])
    platforms = list(platform_tags())
    return frozenset([*cpython_tags((major, minor), [abi_tag], platforms),
                      *compatible_tags((major, minor), f"cp{major}{minor}", platforms)])


def _declared_problem(local: str, target: Target, scheme: NameScheme) -> str | None:
    if not scheme.local:
        return None
    match = scheme.pattern().match(local)
    if match is None:
        return (f"its version label +{local or '(none)'} does not follow the publisher's "
                f"scheme +{scheme.local}")
    declared, wanted = match.groupdict(), target.fields()
    cuda = declared.get("cuda_major") or declared.get("cuda") or declared.get("cuda_nodot") or \
        declared.get("variant")
    if cuda is not None and _cuda_major(cuda) != wanted["cuda_major"]:
        return f"built for CUDA {_cuda_major(cuda) or 'none (CPU)'}, torch here has " \
               f"{wanted['cuda_major'] or 'none (CPU)'}"
    abi = declared.get("cxx11_abi")
    if abi is not None and (abi.upper() in ("TRUE", "1")) != target.cxx11_abi:
        return f"built with C++11 ABI {abi}, torch here has {wanted['cxx11_abi']}"
    torch = declared.get("torch") or declared.get("torch_release") or declared.get("torch_nodot")
    if torch is not None:
        return _torch_problem(torch, declared, target)
    return None


def _torch_problem(torch: str, declared: Mapping[str, str | None], target: Target) -> str | None:
    if "torch_nodot" in declared and declared.get("torch_nodot") and not declared.get("torch_release"):
        torch = f"{torch[0]}.{torch[1:]}"
    built = Version(torch).release
    installed = Version(target.torch_version).release
    if target.stable_abi is not None:
        floor = Version(target.stable_abi).release
        if installed[:2] < floor[:2]:
            return (f"it targets torch's stable ABI of {target.stable_abi}; "
                    f"torch here is {target.torch_version}")
        return None
    if built != installed[: len(built)]:
        return f"built for torch {torch}, torch here is {target.torch_version}"
    return None


def _cuda_major(text: str) -> str:
    if text == "cpu":
        return ""
    digits = text.removeprefix("cu")
    if "." in digits:
        return digits.split(".")[0]
    return digits[:-1] if len(digits) >= 3 else digits


def _plain_platform() -> str:
    """``linux_x86_64``: the platform tag a plain setup.py build gets (flash-attn's wheel names use it)."""
    import sysconfig

    return sysconfig.get_platform().replace("-", "_").replace(".", "_")


# -- 2. the binaries -----------------------------------------------------------------------------


def binary_problem(wheel: Path, target: Target, torch_libs: Iterable[Path]) -> tuple[str | None, list[str]]:
    """Why the downloaded ``wheel``'s binaries cannot run against the env's torch (None if they can),
    and the checks that passed, in words."""
    try:
        check_wheel(wheel)
    except WheelFileError as exc:
        return exc.problem, []
    passed = ["every file matches its RECORD"]
    with tempfile.TemporaryDirectory(prefix="gpuenv-audit-") as scratch:
        try:
            shared = list(extract_binaries(wheel, Path(scratch)))
            infos = {inside: read_dynamic(path) for inside, path in shared}
            codes = {inside: read_cuda_code(path) for inside, path in shared}
        except (WheelFileError, BinaryFormatError) as exc:
            return str(exc), passed
    if not shared:
        return "it holds no shared object: not a compiled extension", passed
    for check in (_cuda_runtime_problem, _device_code_problem):
        problem, said = check(infos, codes, target)
        if problem is not None:
            return problem, passed
        passed.append(said)
    problem, said = _symbol_problem(infos, list(torch_libs))
    if problem is not None:
        return problem, passed
    return None, [*passed, said]


def _cuda_runtime_problem(infos: Mapping[str, DynamicInfo], codes: Mapping[str, CudaCode], target: Target
                          ) -> tuple[str | None, str]:
    wanted = (target.torch_cuda or "").split(".")[0]
    for inside, info in infos.items():
        for needed in info.needed:
            match = _CUDART.match(needed)
            if match is not None and match.group(1) != wanted:
                here = f"CUDA {wanted}" if wanted else "a CPU build"
                return f"{inside} links {needed}; torch here is {here}", ""
    return None, f"links the CUDA runtime of torch's major ({wanted or 'none'})"


def _device_code_problem(infos: Mapping[str, DynamicInfo], codes: Mapping[str, CudaCode], target: Target
                         ) -> tuple[str | None, str]:
    archs = [a.replace("+PTX", "") for a in target.arch_list]
    if not archs:
        return None, "no GPU arch is planned"
    with_code = {inside: code for inside, code in codes.items() if not code.empty}
    if not with_code:
        return "it holds no CUDA device code (a CPU build)", ""
    for inside, code in sorted(with_code.items()):
        missing = [a for a in archs if not code.runs_on(a)]
        if missing:
            held = ", ".join(sorted(code.sass | code.ptx)) or "nothing that runs"
            return f"{inside} has no code for sm_{missing[0].replace('.', '')} (it holds {held})", ""
    return None, f"device code runs on {', '.join(archs)}"


def _symbol_problem(infos: Mapping[str, DynamicInfo], torch_libs: list[Path]) -> tuple[str | None, str]:
    provided = {name for info in infos.values() for name in info.defined}
    wanted = {name for info in infos.values() for name in info.undefined
              if _TORCH_SYMBOL.match(name) and name not in provided}
    count = len(wanted)
    for lib in torch_libs:
        if not wanted:
            break
        try:
            wanted -= defined_among(lib, wanted)
        except BinaryFormatError as exc:
            return f"cannot read the env's {lib.name}: {exc.problem}", ""
    if wanted:
        first = sorted(wanted)[0]
        return (f"{len(wanted)} of its {count} libtorch symbols are not in the torch here "
                f"(built against another torch or C++11 ABI), e.g. {first}"), ""
    return None, f"its {count} libtorch symbols resolve in the torch here"


def torch_libraries(site_packages: Path) -> list[Path]:
    """The torch libraries an extension links against, in the env's ``torch/lib``, largest last."""
    lib = site_packages / "torch" / "lib"
    found = [p for p in lib.glob("*.so*") if p.is_file()] if lib.is_dir() else []
    return sorted(found, key=lambda p: (p.stat().st_size, p.name))


def audit(wheel: Path, target: Target, scheme: NameScheme, torch_libs: Iterable[Path]) -> Verdict:
    """Checks 1 and 2 on a downloaded ``wheel`` (its import is the caller's: it needs the env)."""
    problem = name_problem(wheel.name, target, scheme)
    if problem is not None:
        return Verdict(wheel.name, problem)
    problem, passed = binary_problem(wheel, target, torch_libs)
    return Verdict(wheel.name, problem, ("name and tags fit this env", *passed))

