"""What every test shares: no test asks a package index unless it says so.

``GPUENV_OFFLINE=1`` makes ``gpuenv plan`` and ``setup`` (in-process, or in a
subprocess that inherits the environment) plan from the shipped data only:
the fast tier has no network, and no test reads or writes the user's index
cache. The tests of the index reader run it against a local fake index.
"""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPUENV_OFFLINE", "1")
