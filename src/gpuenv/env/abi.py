"""The ABI an environment gives the extensions compiled in it: one record, read once.

A compiled extension's binary is tied to the interpreter (its ABI tag and platform)
and to the torch it was built against (its version, CUDA release and C++11 ABI).
The wheel cache keys its entries by it (:class:`~gpuenv.cache.key.CacheKey`) and
gpuenv.lock records it (:class:`~gpuenv.lock.lockfile.LockedEnv`): both hold this
record, filled from the env by :func:`env_abi` and written by :meth:`EnvAbi.to_json`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from packaging.version import Version

from gpuenv.env.targetenv import Interpreter, TorchInfo

_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+!-]*", re.ASCII)
_CUDA = re.compile(r"[0-9]{1,2}\.[0-9]{1,2}", re.ASCII)


@dataclass(frozen=True)
class EnvAbi:
    """What a compiled wheel's binary depends on in the env it is built in and installed into."""

    #: The interpreter's ABI tag: "cp311", "cp313t" for a free-threaded build.
    python_tag: str
    #: "linux_x86_64".
    platform: str
    #: ``torch.__version__`` ("2.14.1+cu130"); in the key of a stable-ABI build, the ABI's floor.
    torch_version: str
    #: ``torch.version.cuda`` ("13.0"); None for a CPU build.
    torch_cuda: str | None
    #: ``torch._C._GLIBCXX_USE_CXX11_ABI``.
    cxx11_abi: bool

    def to_json(self) -> dict[str, Any]:
        """The fields by name: what a cache key's and a lock entry's digests hash."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EnvAbi:
        """The record :meth:`to_json` wrote (other keys of ``data`` are left alone); TypeError or
        KeyError on anything else."""
        for name in ("python_tag", "platform", "torch_version"):
            if not isinstance(data[name], str):
                raise TypeError(f"key field {name} is not a string")
        if data["torch_cuda"] is not None and not isinstance(data["torch_cuda"], str):
            raise TypeError("key field torch_cuda is not a string or null")
        if not isinstance(data["cxx11_abi"], bool):
            raise TypeError("key field cxx11_abi is not a boolean")
        return cls(**{name: data[name] for name in ABI_FIELDS})

    def texts(self) -> list[str]:
        """The text fields, for a caller's checks of length and printable characters."""
        return [self.python_tag, self.platform, self.torch_version, self.torch_cuda or ""]

    def check(self) -> None:
        """Raise ValueError unless each field looks like what gpuenv writes into it (a record read back
        from a shared cache was written by whoever could write there)."""
        for name, value in (("python_tag", self.python_tag), ("platform", self.platform)):
            if value and not _TOKEN.fullmatch(value):
                raise ValueError(f"key field {name} {value!r} holds characters no {name} has")
        try:
            Version(self.torch_version)
        except ValueError:  # InvalidVersion, or more digits than int() converts
            raise ValueError(f"key field torch_version {self.torch_version!r} is not a version") from None
        if not _TOKEN.fullmatch(self.torch_version):
            raise ValueError(f"key field torch_version {self.torch_version!r} is not a version")
        if self.torch_cuda is not None and not _CUDA.fullmatch(self.torch_cuda):
            raise ValueError(f"key field torch_cuda {self.torch_cuda!r} is not a CUDA release (\"13.0\")")

    def describe(self) -> dict[str, str]:
        """The record in words, for meta.json, plans and error messages."""
        return {
            "python": self.python_tag,
            "platform": self.platform,
            "torch": self.torch_version,
            "torch cuda": self.torch_cuda or "none (CPU build)",
            "C++11 ABI": "on" if self.cxx11_abi else "off",
        }


#: The record's field names, in order.
ABI_FIELDS = tuple(f.name for f in fields(EnvAbi))


def env_abi(interpreter: Interpreter, torch: TorchInfo) -> EnvAbi:
    """The ABI of the env whose interpreter and torch these are."""
    return EnvAbi(python_tag=interpreter.abi_tag, platform=interpreter.platform_tag,
                  torch_version=torch.version, torch_cuda=torch.cuda, cxx11_abi=torch.cxx11_abi)
