"""Conda environment files (``environment.yml``) read the way conda reads them.

The file is parsed with PyYAML's safe composer, which builds the node tree
with the line of every node and constructs nothing: a tag such as
``!!python/object`` is never executed, only reported. Each dependency is a conda
match spec (conda/models/match_spec.py): ``name=1.10`` is 1.10.* (conda's
"fuzzy" match), ``name==1.10`` and ``name=1.10=build`` are exactly 1.10,
``name >=1.8,<2`` a range, ``channel::name`` names its channel, and a build
string may carry the CUDA release (``py3.9_cuda11.8_cudnn8_0``,
``py38_torch_1.10.0_cu113``). The conda names of the stack are mapped to
PyPI and to the plan through gpuenv/plan/data/conda.toml, each with its
source; the ``pip:`` list is read with pip's grammar (conda hands it to pip
as a requirements file beside the environment file). An exported environment
(every line with a build string) made on another platform is recognised by
packages that exist for that platform only.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from packaging.specifiers import InvalidSpecifier, SpecifierSet

from gpuenv.errors import InputError
from gpuenv.inputs import UnreadableInput, read_input
from gpuenv.load.requirements import RequirementsFile, read_requirement_lines
from gpuenv.plan.packagedata import data_file

#: An environment file larger than this is not one.
MAX_BYTES = 2 << 20
#: More dependencies than this is not an environment file people write or export.
MAX_ITEMS = 5000

_VERSION_BUILD = re.compile(r"((?:.+?)[^><!,|]?)(?:(?<![=!|,<>~])(?:[ =])([^-=,|<>~]+?))?$")
_NAME_REST = re.compile(r"([^ =<>!~]+)?([><!=~ ].+)?")
_BRACKET_PAIR = re.compile(r"([a-zA-Z0-9_-]+?)=([\"']?)([^'\"]*?)(\2)(?:[, ]|$)")
#: CUDA in a build string: cuda11.8 (pytorch channel), cuda118 / cuda120 (conda-forge), cu113 (PyG).
_BUILD_CUDA = (
    re.compile(r"cuda(\d{1,2})\.(\d)"),
    re.compile(r"cuda(\d{2})(\d)(?!\d)"),
    re.compile(r"(?:^|_)cu(\d{2})(\d)(?!\d)"),
)
_BUILD_TORCH = re.compile(r"torch_?(\d+\.\d+(?:\.\d+)?)")


@dataclass(frozen=True)
class MatchSpec:
    """One conda dependency, as conda's MatchSpec reads it."""

    text: str
    lineno: int
    name: str
    channel: str | None = None
    #: The version as conda takes it after its rules ("1.10*", "2.0.1", ">=1.8,<2"), or None.
    version: str | None = None
    build: str | None = None

    @property
    def specifier(self) -> str | None:
        """The version as a PEP 440 specifier ("==1.10.*"), "" for any, None where PEP 440 cannot say it."""
        return pep440(self.version)

    @property
    def cuda(self) -> str | None:
        """The CUDA release its build string names ("11.8"), else None."""
        return build_cuda(self.build)


@dataclass(frozen=True)
class CondaEnv:
    path: Path
    specs: tuple[MatchSpec, ...] = ()
    #: The ``pip:`` list, read with pip's grammar.
    pip: RequirementsFile = field(default_factory=RequirementsFile)
    channels: tuple[str, ...] = ()
    #: "Windows", "macOS", "Linux" for an export that holds packages of that platform only, else None.
    platform: str | None = None
    #: Every dependency carries a build string: the output of ``conda env export``.
    exported: bool = False
    #: The ``prefix:`` an export records (where the env was, on the machine it was made on).
    prefix: str | None = None
    #: Items that are not match specs gpuenv reads, with why (line, text, why).
    skipped: tuple[tuple[int, str, str], ...] = ()
    #: Read from a pixi manifest (:mod:`gpuenv.init.pixi`), not a conda environment file.
    pixi: bool = False


def read_environment(path: Path) -> CondaEnv:
    """Read a conda environment file; InputError when it is not one gpuenv can read."""
    try:
        text = read_input(path, limit=MAX_BYTES)
    except UnreadableInput as exc:
        raise InputError(
            f"{path}: {exc.problem}", hint="a conda environment file is a small YAML text"
        ) from None
    root = compose(text, path)
    if not isinstance(root, yaml.MappingNode):
        raise InputError(
            f"{path}: not a conda environment file (its top level is not a mapping)",
            hint="an environment file has 'name:', 'channels:' and 'dependencies:'",
        )
    top = dict(_pairs(root))
    deps = top.get("dependencies")
    specs: list[MatchSpec] = []
    pip_lines: list[tuple[int, str]] = []
    skipped: list[tuple[int, str, str]] = []
    for node in _items(deps, path):
        line = node.start_mark.line + 1
        if isinstance(node, yaml.ScalarNode) and _plain(node):
            try:
                specs.append(parse_match_spec(node.value, line))
            except ValueError as exc:
                skipped.append((line, node.value, str(exc)))
        elif isinstance(node, yaml.MappingNode):
            for key, value in _pairs(node):
                if key != "pip":
                    skipped.append((line, key, "a mapping conda does not read in dependencies"))
                    continue
                for item in _items(value, path):
                    if isinstance(item, yaml.ScalarNode) and _plain(item):
                        pip_lines.append((item.start_mark.line + 1, item.value))
                    else:
                        skipped.append((item.start_mark.line + 1, _shown(item), "not a pip requirement line"))
        else:
            skipped.append((line, _shown(node), "not a conda match spec"))
    channels = tuple(
        str(n.value) for n in _items(top.get("channels"), path) if isinstance(n, yaml.ScalarNode)
    )
    prefix_node = top.get("prefix")
    prefix = prefix_node.value if isinstance(prefix_node, yaml.ScalarNode) else None
    exported = len(specs) >= 5 and sum(1 for s in specs if s.build) >= 0.8 * len(specs)
    return CondaEnv(
        path,
        tuple(specs),
        read_requirement_lines(pip_lines, path, path.parent),
        channels,
        _platform(specs, prefix),
        exported,
        prefix,
        tuple(skipped),
    )


# -- YAML, composed (never constructed) ----------------------------------------------------------


def compose(text: str, path: Path) -> yaml.Node | None:
    """The YAML node tree of ``text`` with its line marks; InputError for what is not YAML."""
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(
            f"{path}: not YAML{line}: {problem}", hint="conda cannot read it either; correct the file"
        ) from None
    except RecursionError:
        raise InputError(
            f"{path}: nested too deeply to be an environment file",
            hint="conda cannot read it either; correct the file",
        ) from None


def _pairs(node: yaml.MappingNode) -> Iterator[tuple[str, yaml.Node]]:
    for key, value in node.value:
        if isinstance(key, yaml.ScalarNode):
            yield str(key.value), value


def _items(node: yaml.Node | None, path: Path) -> list[yaml.Node]:
    if not isinstance(node, yaml.SequenceNode):
        return []
    if len(node.value) > MAX_ITEMS:
        raise InputError(
            f"{path}: more than {MAX_ITEMS} items in one list: not an environment file gpuenv reads",
            hint="list the environment's packages, not more",
        )
    return list(node.value)


def _plain(node: yaml.ScalarNode) -> bool:
    """A scalar whose tag YAML resolved itself (a string, a number): no explicit tag such as !!python/…"""
    return str(node.tag).startswith("tag:yaml.org,2002:") and node.tag != "tag:yaml.org,2002:binary"


def _shown(node: yaml.Node) -> str:
    if isinstance(node, yaml.ScalarNode):
        return f"{node.tag} {node.value}"[:120]
    return f"a YAML {type(node).__name__.removesuffix('Node').lower()} ({node.tag})"


# -- match specs --------------------------------------------------------------------------------------


def parse_match_spec(text: str, lineno: int = 0) -> MatchSpec:
    """conda's MatchSpec string: ``[channel[/subdir]::]name[ version[ build]]``, ``name=ver=build``,
    ``name[version='>=1',build=...]``; ValueError for what conda would refuse."""
    spec = text.split("#", 1)[0].strip()
    if not spec:
        raise ValueError("an empty match spec")
    brackets: dict[str, str] = {}
    bracket = re.match(r".*(\[.*\])", spec)
    if bracket:
        spec = spec.replace(bracket[1], "")
        for match in _BRACKET_PAIR.finditer(bracket[1][1:-1]):
            brackets[match[1]] = match[3]
    parts = spec.rsplit(":", 2)
    channel = parts[0] if len(parts) == 3 and parts[0] else None
    spec = parts[-1]
    named = _NAME_REST.match(spec)
    if named is None or named[1] is None:
        raise ValueError(f"no package name in {text!r}")
    name, rest = named[1].lower(), (named[2] or "").strip()
    version: str | None = None
    build: str | None = None
    if rest:
        split = _VERSION_BUILD.search(rest)
        if split is not None:
            version, build = split[1].replace(" ", ""), (split[2].strip() if split[2] else None)
        else:
            version = rest
        version = _sanitize(version, build)
    version = _sanitize(brackets["version"], None) if "version" in brackets else version
    build = brackets.get("build", build)
    channel = brackets.get("channel", channel)
    if channel is not None and "/" in channel:
        channel = channel.split("/", 1)[0] if channel.split("/", 1)[1] in _SUBDIRS else channel
    return MatchSpec(text, lineno, name, channel, version, build)


_SUBDIRS = ("noarch", "linux-64", "linux-aarch64", "linux-ppc64le", "osx-64", "osx-arm64", "win-64")


def _sanitize(version: str, build: str | None) -> str:
    """conda's ``_sanitize_version_str``: ``=1.2`` is ``1.2*``, ``==1.2`` and ``=1.2=build`` are ``1.2``."""
    if version in ("=", "==") or not version.startswith("="):
        return version
    bare = version.lstrip("=")
    if version.startswith("==") and build is None:
        return bare
    if not any(c in bare for c in "=,|"):
        return bare + "*" if build is None and not bare.endswith("*") else bare
    return version


def pep440(version: str | None) -> str | None:
    """A conda version spec as PEP 440: "1.10*" → "==1.10.*", "2.0.1" → "==2.0.1", ">=1.8,<2" as is;
    "" for none; None for what PEP 440 cannot say (``1.8|1.9``, versions such as ``1.1.1k``)."""
    if not version or version == "*":
        return ""
    if "|" in version:
        return None
    clauses = []
    for clause in version.split(","):
        clause = clause.strip()
        op = re.match(r"(==|!=|<=|>=|~=|<|>|=)?(.*)", clause)
        assert op is not None
        operator, value = op[1] or "", op[2].strip()
        if value.endswith("*"):
            value = value.rstrip("*").rstrip(".")
            clauses.append(f"{'!=' if operator == '!=' else '=='}{value}.*")
        elif operator in ("", "=", "=="):
            clauses.append(f"=={value}")
        else:
            clauses.append(f"{operator}{value}")
    text = ",".join(clauses)
    try:
        SpecifierSet(text)
    except InvalidSpecifier:
        return None
    return text


def build_cuda(build: str | None) -> str | None:
    """The CUDA release a build string names: py3.9_cuda11.8_cudnn8_0 → 11.8, cuda120_py310h… → 12.0,
    py38_torch_1.10.0_cu113 → 11.3; None for a CPU or unknown build."""
    if not build:
        return None
    for pattern in _BUILD_CUDA:
        match = pattern.search(build)
        if match:
            return f"{int(match[1])}.{match[2]}"
    return None


def build_torch(build: str | None) -> str | None:
    """The torch a package was built against, as its build string says (py38_torch_1.10.0_cu113 → 1.10.0)."""
    match = _BUILD_TORCH.search(build or "")
    return match[1] if match else None


# -- what the names are ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CondaName:
    role: str
    pypi: str | None = None
    cpu: bool = False
    sources: tuple[str, ...] = ()


@functools.cache
def _known() -> dict[str, Any]:
    return data_file("conda.toml")


def conda_name(name: str) -> CondaName | None:
    """What the conda package ``name`` is to gpuenv (gpuenv/plan/data/conda.toml), or None if unknown."""
    raw = _known().get(name.lower())
    if raw is None or name.lower() == "platform-markers":
        return None
    return CondaName(
        str(raw["role"]), raw.get("pypi"), bool(raw.get("cpu", False)), tuple(raw.get("sources", ()))
    )


def _platform(specs: list[MatchSpec], prefix: str | None) -> str | None:
    platforms = _known()["platform-markers"]
    for platform, key in (("Windows", "windows"), ("macOS", "macos"), ("Linux", "linux")):
        patterns = platforms[key]
        if any(fnmatch.fnmatch(s.name, p) for s in specs for p in patterns):
            return platform
    if prefix and re.match(r"^[A-Za-z]:[\\/]", prefix):
        return "Windows"
    return None
