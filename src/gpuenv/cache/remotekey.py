"""How a wheel's cache key travels to a package index, so two ABIs can never be confused there.

A server (pypiserver, devpi, a static folder) knows wheels only by file name,
and one version of torch-scatter built against two torches has one name. The
shared cache therefore names each wheel it pushes with a *build tag* that holds
the full key digest, and packs the key itself into the wheel:

- ``torch_scatter-2.1.2-1gpuenv3fa2…(64 hex)…-cp312-cp312-linux_x86_64.whl``:
  the build tag is :data:`~gpuenv.cache.key.CACHE_SCHEMA`, ``gpuenv`` and the
  sha256 digest of the key. A lookup asks for the one file name the key gives;
  another ABI has another digest, hence another name. The build tag is part of
  the wheel file name standard (PEP 427), so every index and installer
  accepts it and the version stays the package's own.
- ``NAME-VERSION.dist-info/gpuenv-cache-key.json`` inside the wheel: the key's
  fields, so what is downloaded is checked against the key that was asked
  for, field by field, not only by its name (a file renamed by hand, or
  uploaded under another key's name, is refused). It is listed in RECORD, so
  installers record it; ``pip show -f`` lists it in the installed env.

The wheel gpuenv pushes is the built one with that file added
(:func:`with_key`): the same input gives the same bytes, so a push repeated
after an interruption uploads the identical file.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from gpuenv.cache.key import CACHE_SCHEMA, CacheKey, key_differences
from gpuenv.cache.wheelfile import WheelFileError, add_dist_info_file, check_wheel, read_member
from gpuenv.errors import GpuenvError
from gpuenv.inputs import UnreadableInput, parse_json

KEY_FILE = "gpuenv-cache-key.json"
_TAG = re.compile(r"^(?P<schema>\d+)gpuenv(?P<digest>[0-9a-f]{64})$")
_WHEEL = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)(-(?P<build>\d[^-]*))?"
                    r"-(?P<python>[^-]+)-(?P<abi>[^-]+)-(?P<platform>[^-]+)\.whl$")


class RemoteKeyError(GpuenvError):
    """A wheel from a shared cache whose key is missing or is not the one asked for."""

    def __init__(self, file_name: str, problem: str) -> None:
        self.file_name = file_name
        self.problem = problem
        super().__init__(f"{file_name}: {problem}")


def build_tag(key: CacheKey) -> str:
    """``1gpuenv<digest>``: the build tag of ``key``'s wheel on a server."""
    return f"{CACHE_SCHEMA}gpuenv{key.digest}"


def split_wheel_name(file_name: str) -> dict[str, str] | None:
    """The parts of a wheel file name as written (``build`` is "" when it has none), or None."""
    match = _WHEEL.match(file_name)
    if match is None:
        return None
    return {part: value or "" for part, value in match.groupdict().items()}


def remote_name(file_name: str, key: CacheKey) -> str:
    """``file_name`` with the build tag of ``key`` (in place of any build tag it had)."""
    parts = split_wheel_name(file_name)
    if parts is None:
        raise ValueError(f"{file_name!r} is not a wheel file name")
    return (f"{parts['name']}-{parts['version']}-{build_tag(key)}-"
            f"{parts['python']}-{parts['abi']}-{parts['platform']}.whl")


def local_name(file_name: str) -> str:
    """``file_name`` without a gpuenv build tag: the name the builder gave the wheel."""
    parts = split_wheel_name(file_name)
    if parts is None or not _TAG.match(parts["build"]):
        return file_name
    return f"{parts['name']}-{parts['version']}-{parts['python']}-{parts['abi']}-{parts['platform']}.whl"


def digest_in_name(file_name: str) -> str | None:
    """The key digest a gpuenv build tag in ``file_name`` holds, or None (no tag, or another schema)."""
    parts = split_wheel_name(file_name)
    match = _TAG.match(parts["build"]) if parts is not None else None
    if match is None or int(match.group("schema")) != CACHE_SCHEMA:
        return None
    return match.group("digest")


def key_document(key: CacheKey) -> bytes:
    """The key file's bytes: the digest, the fields and the fields in words (sorted: reproducible)."""
    document = {"schema": CACHE_SCHEMA, "digest": key.digest, "key": key.to_json(),
                "described": key.describe()}
    return (json.dumps(document, indent=2, sort_keys=True, ensure_ascii=True) + "\n").encode()


def with_key(wheel: Path, key: CacheKey, out_dir: Path) -> Path:
    """``wheel`` as it is pushed: named by :func:`remote_name`, with :data:`KEY_FILE` in its .dist-info."""
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / remote_name(wheel.name, key)
    add_dist_info_file(wheel, target, KEY_FILE, key_document(key))
    return target


def read_key(wheel: Path) -> CacheKey:
    """The key packed in ``wheel``; :class:`RemoteKeyError` if it has none or it does not read."""
    try:
        data = read_member(wheel, "{dist-info}/" + KEY_FILE, limit=1 << 20)
    except WheelFileError as exc:
        raise RemoteKeyError(wheel.name, exc.problem) from None
    if data is None:
        raise RemoteKeyError(wheel.name, f"holds no {KEY_FILE}: it was not pushed by gpuenv")
    try:
        document = parse_json(data.decode("utf-8"))
        key = CacheKey.from_json(document["key"])
    except (UnreadableInput, ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise RemoteKeyError(wheel.name, f"its {KEY_FILE} does not read as a cache key: {exc}") from None
    if document.get("digest") != key.digest:
        raise RemoteKeyError(wheel.name, f"its {KEY_FILE} gives a digest that is not its key's")
    return key


def verify(wheel: Path, wanted: CacheKey) -> None:
    """Raise :class:`RemoteKeyError` unless ``wheel`` is a whole wheel (every file as its RECORD
    says) whose name and packed key are ``wanted``'s."""
    named = digest_in_name(wheel.name)
    if named != wanted.digest:
        raise RemoteKeyError(wheel.name, f"its name holds key {(named or 'none')[:12]}, "
                                         f"not {wanted.digest[:12]}")
    try:
        check_wheel(wheel)
    except WheelFileError as exc:
        raise RemoteKeyError(wheel.name, exc.problem) from None
    packed = read_key(wheel)
    if packed != wanted:
        raise RemoteKeyError(wheel.name, "its packed key is not the one its name gives: "
                                         + "; ".join(key_differences(packed, wanted) or ["other fields"]))
