"""The ``[torch]`` table of a recipe: :class:`TorchSpec` and its validation.

Which torch (``version``, normalised to a specifier), which CUDA build
(``cuda``: "auto", "cpu" or a variant), the index it comes from (``index``),
the packages installed with it (``packages``), where nvcc comes from
(``toolkit``), and whether gpuenv installs torch at all (``use``: "existing"
takes the torch of the env it is pointed at, as it is).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass

from packaging.specifiers import InvalidSpecifier, Specifier
from packaging.version import Version

from gpuenv.inputs import placeholder_problem
from gpuenv.plan.recipevalues import Where, as_requirements, as_string, as_table, check_keys, home_path

DEFAULT_INDEX = "https://download.pytorch.org/whl/{variant}"


@dataclass(frozen=True)
class TorchSpec:
    #: The PEP 440 specifier, normalised: "2.4.1" is stored as "==2.4.1".
    version: str
    #: "auto", "cpu", or a variant such as "cu121" ("12.1" is normalised to "cu121").
    cuda: str = "auto"
    #: Index URL template; ``{variant}`` is replaced by the chosen variant.
    index: str = DEFAULT_INDEX
    #: Whether ``index`` was written in the recipe (rather than the default).
    index_given: bool = False
    #: Requirements installed together with torch, from the same index.
    packages: tuple[str, ...] = ()
    #: Where nvcc comes from: "auto", "system", "pypi", or a toolkit root (made absolute).
    toolkit: str = "auto"
    #: "install" (gpuenv chooses and installs torch) or "existing" (the env's torch, never replaced).
    use: str = "install"

    @property
    def existing(self) -> bool:
        return self.use == "existing"


#: Examples quoted by errors, so every message points at something that works.
_VERSION_EXAMPLES = '"2.14.1", "2.14.*" or ">=2.13,<2.15"'
_CUDA_FORMS = '"auto", "cpu", a CUDA version such as "12.1" or a variant such as "cu121"'

_TORCH_KEYS = ("version", "cuda", "index", "packages", "toolkit", "use")
#: What [torch] use may say.
USES = ("install", "existing")
_CUDA_VERSION = re.compile(r"([0-9]{2})\.([0-9])", re.ASCII)
_CUDA_VARIANT = re.compile(r"cu[0-9]{3}", re.ASCII)
_NAME_THEN_REST = re.compile(r"([A-Za-z][A-Za-z0-9._-]*)\s*(.*)")


def torch_table(where: Where, value: object) -> TorchSpec:
    table = as_table(where, "torch", value)
    check_keys(where, "torch", table, _TORCH_KEYS)
    use = _use(where, as_string(where, "torch.use", table.get("use", "install")))
    if "version" not in table and use != "existing":
        raise where.error("torch.version", 'missing; write the torch to install, e.g. version = "2.14.*" '
                          '(or use = "existing" to build against the torch of the env you point gpuenv at)')
    index = table.get("index")
    if use == "existing":
        _nothing_to_install(where, table)
    version = table.get("version")
    return TorchSpec(
        version="" if version is None else _torch_version(where, as_string(where, "torch.version", version)),
        cuda=_cuda(where, as_string(where, "torch.cuda", table.get("cuda", "auto"))),
        index=DEFAULT_INDEX if index is None else _index(where, as_string(where, "torch.index", index)),
        index_given=index is not None,
        packages=as_requirements(where, "torch.packages", table.get("packages", []), torch_is_set_by(where)),
        toolkit=_toolkit(where, as_string(where, "torch.toolkit", table.get("toolkit", "auto"))),
        use=use,
    )


def _use(where: Where, text: str) -> str:
    value = text.strip().lower()
    if value in USES:
        return value
    match = difflib.get_close_matches(value, USES, n=1)
    raise where.error("torch.use", f"{text!r} is neither \"install\" (gpuenv installs torch) nor "
                      "\"existing\" (the torch already in the env)", suggestion=match[0] if match else None)


def _nothing_to_install(where: Where, table: Mapping[str, object]) -> None:
    """With use = "existing" gpuenv installs no torch: a variant or an index to take it from is a mistake."""
    if "index" in table:
        raise where.error("torch.index", 'with use = "existing" gpuenv installs no torch: remove index')
    cuda = table.get("cuda", "auto")
    if isinstance(cuda, str) and cuda.strip().lower() != "auto":
        raise where.error("torch.cuda", 'with use = "existing" the CUDA build is the torch\'s own: '
                          'remove cuda (or write cuda = "auto")')


def _toolkit(where: Where, text: str) -> str:
    """"auto", "system", "pypi", or a toolkit directory (relative to the recipe)."""
    modes = ("auto", "system", "pypi")
    if text.strip().lower() in modes:
        return text.strip().lower()
    if "/" not in text and not text.startswith(("~", ".")):
        match = difflib.get_close_matches(text.strip().lower(), modes, n=1)
        raise where.error("torch.toolkit", f"{text!r} is neither auto, system, pypi nor a path to a toolkit "
                          "root (write ./cuda or /opt/cuda-13.0)", suggestion=match[0] if match else None)
    return str((where.path.parent / home_path(text, f"{where.path}: torch.toolkit")).absolute())


def _torch_version(where: Where, text: str) -> str:
    """The recipe's version as a specifier: "2.4.1" → "==2.4.1", "2.4.*" → "==2.4.*"."""
    key, text = "torch.version", text.strip()
    if not text:
        raise where.error(key, f"is empty; write e.g. {_VERSION_EXAMPLES}")
    named = _NAME_THEN_REST.fullmatch(text)
    if named and named[2]:
        # "torch>=2.4": the package is implied by the table.
        raise where.error(
            key,
            f"{text!r} names a package, not a version; "
            f'write only the version or specifier: version = "{named[2]}"',
        )
    if not any(char in text for char in "<>=!~,"):
        return _bare_version(where, text)
    for clause in (part.strip() for part in text.split(",")):
        _specifier_clause(where, text, clause)
    return text


def _bare_version(where: Where, text: str) -> str:
    release = text[:-2] if text.endswith(".*") else text
    try:
        version = Version(release)
    except ValueError:  # InvalidVersion, or more digits than int() converts
        raise where.error(
            "torch.version", f"{text!r} is not a PEP 440 version; write e.g. {_VERSION_EXAMPLES}"
        ) from None
    _no_local_label(where, text, version)
    return f"=={version}.*" if text.endswith(".*") else f"=={version}"


def _specifier_clause(where: Where, text: str, clause: str) -> None:
    inside = f" in {text!r}" if clause != text else ""
    try:
        specifier = Specifier(clause)
    except InvalidSpecifier:
        raise where.error(
            "torch.version",
            f"{clause!r}{inside} is not a valid specifier; write e.g. {_VERSION_EXAMPLES}",
        ) from None
    if "*" not in specifier.version and specifier.operator != "===":
        _no_local_label(where, text, Version(specifier.version))


def _no_local_label(where: Where, text: str, version: Version) -> None:
    # The CUDA build is the planner's choice (torch.cuda); a "+cu121" here would fight it.
    if version.local is None:
        return
    raise where.error(
        "torch.version",
        f"{text!r} has a local label (+{version.local}); choose the build with torch.cuda instead: "
        f'version = "{version.public}" and cuda = "{version.local}"',
    )


def _cuda(where: Where, text: str) -> str:
    """"auto", "cpu" or a variant: "12.1" and "cu121" both become "cu121"."""
    value = text.strip().lower()
    if value in ("auto", "cpu") or _CUDA_VARIANT.fullmatch(value):
        return value
    version = _CUDA_VERSION.fullmatch(value)
    if version:
        return f"cu{version[1]}{version[2]}"
    raise where.error("torch.cuda", f"{text!r} is not a CUDA choice; write {_CUDA_FORMS}")


def _index(where: Where, template: str) -> str:
    problem = placeholder_problem(template)
    if problem is not None:
        raise where.error("torch.index", f"{template!r} {problem}")
    lowered = template.lower()
    if not (lowered.startswith(("http://", "https://", "file://")) or template.startswith("/")):
        raise where.error(
            "torch.index",
            f"{template!r} is not a URL; write an http(s):// or file:// URL or an absolute path, "
            f'e.g. "{DEFAULT_INDEX}"',
        )
    return template


def torch_is_set_by(where: Where) -> str:
    return f"torch is set by {where.prefix}torch.version; list only other packages here"
