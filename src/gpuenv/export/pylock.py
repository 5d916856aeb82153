"""``gpuenv export pylock``: a PEP 751 ``pylock.toml`` of a set-up environment.

Every distribution installed in the env is locked at its installed version
with the artifact it came from and that artifact's sha256:

- what the installer recorded itself: a wheel or archive installed by path or
  URL has a ``direct_url.json`` with its URL and hash (the extensions gpuenv
  built are installed this way, from the wheel cache); a local directory or a
  VCS checkout is recorded as such;
- for what came from an index, which records neither, the env's own pip is
  asked which file it would install for exactly ``name==version`` (``pip
  install --dry-run --report``): the same configured sources, the same wheel
  tags, and the hash pip computes or the index states.

Each extension in ``gpuenv.lock`` is its cached wheel (path and sha256) with
its cache key and archs in ``[packages.tool.gpuenv]``; the plan's facts
(variant, torch, archs, toolkit) are in ``[tool.gpuenv]``. uv and pip install
the file into a fresh env with no resolution and, when every entry is a
wheel, no build.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

from packaging.utils import canonicalize_name

from gpuenv.cache.wheels import WheelCache
from gpuenv.env.envanswers import DISTRIBUTION_READER, AnswerError
from gpuenv.env.envqueries import env_query
from gpuenv.env.targetenv import TargetEnv
from gpuenv.errors import CommandError, InputError
from gpuenv.lock.lockfile import LockedEnv, LockedExtension
from gpuenv.outputs import output_file, write_atomic
from gpuenv.runner import ANSWER_MARK, Runner, bounded, import_timeout
from gpuenv.tomlwrite import toml_key, toml_value
from gpuenv.version import __version__

PYLOCK_NAME = "pylock.toml"

# A direct_url.json that is not JSON is no record at all; a float in it comes back as null (gpuenv
# reads none: 1e999 must not make the whole answer unreadable); its types are checked on this side.
_DISTRIBUTIONS_SCRIPT = env_query("distributions", DISTRIBUTION_READER + f"""
def direct_url(dist):
    base = getattr(dist, "_path", None)
    path = os.path.join(str(base), "direct_url.json") if base is not None else ""
    if not path or not os.path.isfile(path):
        return None
    try:
        with open(path, "rb") as handle:
            text = handle.read(1 << 20).decode("utf-8", "replace")
        return json.loads(text, parse_float=lambda t: None, parse_constant=lambda t: None)
    except Exception:
        return None
found = {{}}
for dist in importlib.metadata.distributions():
    name, version = name_and_version(dist)
    if not name or name in found:
        continue
    found[name] = {{"version": version, "direct_url": direct_url(dist),
                   "requires_python": meta_header(dist, "Requires-Python")}}
print({ANSWER_MARK!r} + json.dumps(found))
""")


@dataclass(frozen=True)
class Artifact:
    """Where one distribution's file is: ``kind`` is "wheel", "sdist", "archive", "directory" or "vcs"."""

    kind: str
    #: The URL of a remote file, or None.
    url: str | None = None
    #: The local path of a file or directory, or None.
    path: str | None = None
    sha256: str | None = None
    editable: bool = False
    commit: str | None = None
    subdirectory: str | None = None
    #: The VCS of a "vcs" artifact ("git").
    vcs: str | None = None

    @property
    def file_name(self) -> str:
        return unquote((self.url or self.path or "").rstrip("/").rsplit("/", 1)[-1])


@dataclass(frozen=True)
class LockedPackage:
    name: str
    version: str
    artifact: Artifact
    requires_python: str | None = None
    #: gpuenv's facts about a built extension: its cache key, archs, knobs.
    tool: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Pylock:
    packages: tuple[LockedPackage, ...]
    #: gpuenv's facts about the env, for ``[tool.gpuenv]``.
    tool: Mapping[str, Any]
    environment: str | None = None
    #: Distributions that could not be given an artifact, with the reason.
    unlocked: tuple[str, ...] = ()

    def render(self) -> str:
        return render_pylock(self)


# -- reading the env --------------------------------------------------------------------


def artifact_from_direct_url(data: Any) -> Artifact | None:
    """The artifact a ``direct_url.json`` (or a pip report's ``download_info``) describes; None for
    one that describes nothing usable (a damaged or hand-made file: wrong types, no URL)."""
    if not isinstance(data, Mapping):
        return None
    url = _text(data.get("url"))
    if not url:
        return None
    local = _local_path(url)
    subdirectory = _text(data.get("subdirectory"))
    if "vcs_info" in data:
        vcs = _table(data["vcs_info"])
        return Artifact("vcs", url=url, commit=_text(vcs.get("commit_id")), subdirectory=subdirectory,
                        vcs=_text(vcs.get("vcs")) or "git")
    if "dir_info" in data:
        editable = _table(data["dir_info"]).get("editable") is True
        return Artifact("directory", path=local or url, editable=editable, subdirectory=subdirectory)
    archive = _table(data.get("archive_info"))
    sha256 = _text(_table(archive.get("hashes")).get("sha256"))
    if sha256 is None and (_text(archive.get("hash")) or "").startswith("sha256="):
        sha256 = str(archive["hash"]).partition("=")[2]
    if sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", sha256):
        sha256 = None
    if sha256 is None and local is not None and Path(local).is_file():
        from gpuenv.setup.sources import file_sha256

        sha256 = file_sha256(Path(local))
    kind = "wheel" if url.endswith(".whl") else ("sdist" if _is_sdist(url) else "archive")
    return Artifact(kind, url=None if local else url, path=local, sha256=sha256, subdirectory=subdirectory)


def _text(value: Any) -> str | None:
    """A string field of a record, or None (a number, a table, a string with control characters)."""
    return value if isinstance(value, str) and value.isprintable() else None


def _table(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _is_sdist(url: str) -> bool:
    return url.endswith((".tar.gz", ".zip"))


def _local_path(url: str) -> str | None:
    parsed = urlparse(url)
    return url2pathname(parsed.path) if parsed.scheme == "file" else None


def installed_distributions(env: TargetEnv, runner: Runner) -> dict[str, dict[str, Any]]:
    """Canonical name → {version, direct_url, requires_python} of every distribution in ``env``."""
    data = env.query(runner, _DISTRIBUTIONS_SCRIPT)
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise AnswerError("distributions that are not a table", data)
    return {canonicalize_name(str(name)): {"version": str(value.get("version") or ""),
                                           "direct_url": value.get("direct_url"),
                                           "requires_python": _text(value.get("requires_python"))}
            for name, value in data.items()}


def resolve_from_sources(env: TargetEnv, runner: Runner, pins: Mapping[str, str]) -> dict[str, Artifact]:
    """The file the env's pip would install for each ``name==version``, with its sha256.

    One ``pip install --dry-run --report`` for all of them, with pip's own
    configuration: the sources the env was installed from.
    """
    if not pins:
        return {}
    with tempfile.TemporaryDirectory(prefix="gpuenv-pylock-") as tmp:
        report = Path(tmp) / "report.json"
        args = ["install", "--dry-run", "--ignore-installed", "--no-deps", "--quiet",
                "--disable-pip-version-check", "--report", str(report),
                *[f"{name}=={version}" for name, version in sorted(pins.items())]]
        runner = bounded(runner, import_timeout())
        try:
            runner([str(env.python), "-m", "pip", *args])
        except CommandError:
            # An env without pip (made by uv): gpuenv's own pip, aimed at the env's interpreter.
            runner([sys.executable, "-m", "pip", "--python", str(env.python), *args])
        data = json.loads(report.read_text(encoding="utf-8"))
    found: dict[str, Artifact] = {}
    for item in data.get("install", []):
        artifact = artifact_from_direct_url(item.get("download_info", {}))
        if artifact is not None:
            found[canonicalize_name(item["metadata"]["name"])] = artifact
    return found


# -- the lock ----------------------------------------------------------------------------


def make_pylock(
    env: TargetEnv,
    runner: Runner,
    *,
    locked: LockedEnv | None = None,
    cache: WheelCache | None = None,
) -> Pylock:
    """The pylock of ``env``; ``locked`` (its gpuenv.lock entry) adds the extensions' cache facts."""
    if not (env.path / "pyvenv.cfg").is_file():
        raise InputError(f"{env.path} is not a virtual environment",
                         hint="point --venv at the environment 'gpuenv setup' made")
    dists = installed_distributions(env, runner)
    extensions: dict[str, LockedExtension] = {
        canonicalize_name(e.name): e for e in (locked.extensions if locked else ())}
    artifacts: dict[str, Artifact | None] = {}
    for name, info in dists.items():
        artifact = artifact_from_direct_url(info["direct_url"]) if info.get("direct_url") else None
        if name in extensions:
            artifact = _cached_wheel(extensions[name], cache) or artifact
        artifacts[name] = artifact
    missing = {n: dists[n]["version"] for n, a in artifacts.items() if a is None or _unhashed(a)}
    unlocked: list[str] = []
    blocking = _blocking_metadata(env.path)
    if missing and blocking:
        unlocked.append(f"pip was not asked for the files of {', '.join(sorted(missing))}: {blocking} is not "
                        "a regular file, and pip would wait on it forever")
    elif missing:
        try:
            artifacts.update(resolve_from_sources(env, runner, missing))
        except CommandError as exc:
            said = exc.tail.strip().splitlines()[-1:] or [str(exc)]
            unlocked.append(f"asking pip for the files of {', '.join(sorted(missing))} failed: {said[0]}")
    packages = []
    for name, info in sorted(dists.items()):
        artifact = artifacts.get(name)
        if artifact is None or _unhashed(artifact):
            # Left out, not written without a file: installers refuse a lock with such an entry.
            unlocked.append(f"{name} {info['version']}: no file with a sha256 is known for it")
            continue
        packages.append(LockedPackage(name, str(info["version"]), artifact, info.get("requires_python"),
                                      _extension_tool(extensions.get(name))))
    interpreter = env.interpreter(runner)
    return Pylock(tuple(packages), _env_tool(locked, cache), _environment(interpreter.markers),
                  tuple(unlocked))


def _blocking_metadata(venv: Path) -> Path | None:
    """A metadata file of the env that is a FIFO or a device (pip reads each one it lists), or None."""
    for site in sorted(venv.glob("lib/*/site-packages")):
        for info in sorted([*site.glob("*.dist-info"), *site.glob("*.egg-info")]):
            candidates = [info / n for n in ("METADATA", "PKG-INFO", "RECORD", "direct_url.json")] \
                if info.is_dir() else [info]
            for path in candidates:
                if os.path.lexists(path) and not (path.is_file() or not path.exists()):
                    return path
    return None


def _unhashed(artifact: Artifact) -> bool:
    """A file without a sha256, or a local file that is gone: nothing an installer can verify."""
    if artifact.kind not in ("wheel", "sdist", "archive"):
        return False
    return artifact.sha256 is None or (artifact.path is not None and not Path(artifact.path).is_file())


def _cached_wheel(ext: LockedExtension, cache: WheelCache | None) -> Artifact | None:
    """The extension's wheel in the cache, if the cache still holds that very file, unaltered."""
    entry = cache.entry_of(ext.cache_key) if cache is not None else None
    if entry is None or entry.sha256 != ext.wheel_sha256 or cache is None or cache.verify(entry) is not None:
        return None
    return Artifact("wheel", path=str(entry.wheel), sha256=entry.sha256)


def _extension_tool(ext: LockedExtension | None) -> dict[str, Any]:
    if ext is None:
        return {}
    return {"requirement": ext.requirement, "cache-key": ext.cache_key, "source": ext.source,
            "arch-list": list(ext.arch_list), "knobs": dict(ext.knobs)}


def _env_tool(locked: LockedEnv | None, cache: WheelCache | None) -> dict[str, Any]:
    tool: dict[str, Any] = {"gpuenv-version": __version__}
    if locked is not None:
        tool.update({
            "env": locked.name, "recipe": locked.recipe, "variant": locked.variant, "cuda": locked.cuda,
            "index-url": locked.index_url, "torch": locked.abi.torch_version,
            "torch-cuda": locked.abi.torch_cuda, "cxx11-abi": locked.abi.cxx11_abi,
            "arch-list": list(locked.arch_list), "toolkit": locked.toolkit,
            "python": locked.abi.python_tag, "platform": locked.abi.platform,
        })
    if cache is not None:
        tool["cache-dir"] = str(cache.path)
    return tool


def _environment(markers: Mapping[str, str]) -> str:
    """The one environment the lock was made in, as a PEP 508 marker."""
    parts = [f"{name} == {json.dumps(markers[name])}"
             for name in ("sys_platform", "platform_machine", "implementation_name", "python_version")
             if name in markers]
    return " and ".join(parts).replace('"', "'")


# -- writing -----------------------------------------------------------------------------


def render_pylock(lock: Pylock) -> str:
    lines = [
        "# pylock.toml (PEP 751) of an environment set up by gpuenv: `gpuenv export pylock`.",
        "# Install it into a fresh env: uv pip install -r pylock.toml (or pip install -r, pip >= 25.1).",
        'lock-version = "1.0"',
        f"created-by = {toml_value('gpuenv')}",
    ]
    if lock.environment:
        lines.append(f"environments = {toml_value([lock.environment])}")
    for package in lock.packages:
        lines += ["", "[[packages]]", f"name = {toml_value(package.name)}",
                  f"version = {toml_value(package.version)}"]
        if package.requires_python:
            lines.append(f"requires-python = {toml_value(package.requires_python)}")
        lines.append(_artifact_line(package.artifact))
        if package.tool:
            lines += ["", "[packages.tool.gpuenv]"]
            lines += [f"{toml_key(k)} = {toml_value(v)}" for k, v in package.tool.items()]
    lines += ["", "[tool.gpuenv]"]
    lines += [f"{toml_key(k)} = {toml_value(v)}" for k, v in lock.tool.items() if v is not None]
    if lock.unlocked:
        lines.append(f"unlocked = {toml_value(list(lock.unlocked))}")
    return "\n".join(lines) + "\n"


def _artifact_line(a: Artifact) -> str:
    where: dict[str, Any] = {"url": a.url} if a.url else {"path": a.path}
    if a.kind == "wheel":
        return f"wheels = [{_inline({'name': a.file_name, **where, 'hashes': {'sha256': a.sha256}})}]"
    if a.kind in ("sdist", "archive"):
        extra = {"subdirectory": a.subdirectory} if a.subdirectory else {}
        return f"{a.kind} = {_inline({**where, 'hashes': {'sha256': a.sha256}, **extra})}"
    if a.kind == "directory":
        return f"directory = {_inline({**where, 'editable': a.editable})}"
    vcs = {"type": a.vcs, "url": a.url, "commit-id": a.commit, "subdirectory": a.subdirectory}
    return f"vcs = {_inline(vcs)}"


def _inline(table: Mapping[str, Any]) -> str:
    return toml_value({k: v for k, v in table.items() if v is not None})


def write_pylock(lock: Pylock, path: Path) -> None:
    """Write the lock to ``path``: checked inside its folder, replaced whole (see gpuenv.outputs)."""
    write_atomic(output_file(path), lock.render().encode("utf-8"))



def export_pylock(venv: Path, *, locked: LockedEnv | None, cache_dir: Path | None,
                  output: Path | None) -> str:
    """``gpuenv export pylock``: the lock, or (with ``output``) where it went and what is not locked."""
    from gpuenv.runner import SubprocessRunner

    if output is not None:
        output_file(output)  # a place it cannot write is said before the env is asked anything
    lock = make_pylock(TargetEnv.at(venv), SubprocessRunner(), locked=locked,
                       cache=WheelCache(cache_dir) if cache_dir is not None else None)
    text = lock.render()
    if output is None:
        return text.rstrip("\n")
    write_pylock(lock, output)
    lines = [f"wrote {output} ({len(lock.packages)} distributions)"]
    lines += [f"warning: not locked: {line}" for line in lock.unlocked]
    return "\n".join(lines)
