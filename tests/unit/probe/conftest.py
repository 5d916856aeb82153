"""The fake NVML library and a way to run the probe against it.

``fake_nvml.c`` is compiled once per session into ``libnvidia-ml.so.1``; each
test writes the library's configuration (format in the C file's header) and
runs the probe in a subprocess whose ``LD_LIBRARY_PATH`` points at it, so the
real nvidia-ml-py binding loads the fake exactly as it would load the driver's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

FAKE_SOURCE = Path(__file__).with_name("fake_nvml.c")

#: Runs probe() and prints one JSON line: {"hardware": ...} or {"error": ...}.
PROBE_SCRIPT = textwrap.dedent(
    """
    import json
    from gpuenv.errors import GpuenvError
    from gpuenv.probe.host import probe

    try:
        hardware = probe()
    except GpuenvError as exc:
        print(json.dumps({"error": {"type": type(exc).__name__, "message": str(exc),
                                    "hint": exc.hint, "call": getattr(exc, "call", None),
                                    "code": getattr(exc, "nvml_code", None)}}))
    else:
        print(json.dumps({"hardware": hardware.to_json()}))
    """
)


@dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


@pytest.fixture(scope="session")
def fake_nvml_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the compiled fake ``libnvidia-ml.so.1``."""
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        pytest.skip("no C compiler to build the fake NVML library")
    out = tmp_path_factory.mktemp("fake_nvml")
    subprocess.run(
        [gcc, "-shared", "-fPIC", "-O1", "-Wall", "-Wextra", "-o", str(out / "libnvidia-ml.so.1"),
         str(FAKE_SOURCE)],
        check=True, capture_output=True, text=True,
    )
    return out


def _environ(fake_dir: Path | None, config: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH", "FAKE_NVML_CONFIG")}
    if fake_dir is not None:
        env["LD_LIBRARY_PATH"] = str(fake_dir)
    if config is not None:
        env["FAKE_NVML_CONFIG"] = str(config)
    return env


RunProbe = Callable[..., Finished]


@pytest.fixture
def run_probe(fake_nvml_dir: Path, tmp_path: Path) -> RunProbe:
    """``run_probe(config, *argv)``: run the probe script (or ``python *argv``) on the fake.

    ``config=None`` runs without the fake on the library path (no NVML at all).
    """

    def run(config: str | None, *argv: str) -> Finished:
        config_path = None
        if config is not None:
            config_path = tmp_path / "fake_nvml.conf"
            config_path.write_text(textwrap.dedent(config), encoding="utf-8")
        fake_dir = fake_nvml_dir if config is not None else None
        cmd = [sys.executable, *(argv or ("-c", PROBE_SCRIPT))]
        proc = subprocess.run(cmd, env=_environ(fake_dir, config_path), capture_output=True,
                              text=True, timeout=120, check=False)
        return Finished(proc.returncode, proc.stdout, proc.stderr)

    return run
