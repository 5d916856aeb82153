"""A real pypiserver on 127.0.0.1 for the shared-cache tests (installed by the `test` extra)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class Server:
    root: str
    packages: Path

    @property
    def simple(self) -> str:
        """The URL pip (and --cache-from) reads."""
        return f"{self.root}simple/"


def free_port() -> int:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = int(probe.getsockname()[1])
    probe.close()
    return port


@contextmanager
def pypiserver(packages: Path) -> Iterator[Server]:
    """pypiserver serving (and taking uploads into) ``packages``, without authentication, stopped after."""
    pytest.importorskip("pypiserver", reason="pypiserver comes with gpuenv's test extra")
    packages.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = open(packages.parent / f"pypiserver-{port}.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "pypiserver", "run", "-i", "127.0.0.1", "-p", str(port), "-a", ".", "-P", ".",
         "--disable-fallback", "--backend", "simple-dir", str(packages)],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )
    root = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(root + "health", timeout=2):
                    break
            except (urllib.error.URLError, OSError):
                assert proc.poll() is None, (packages.parent / f"pypiserver-{port}.log").read_text()
                assert time.monotonic() < deadline, "pypiserver did not start within 30 s"
                time.sleep(0.2)
        yield Server(root, packages)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()
