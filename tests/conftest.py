"""What every test shares: the tiers by folder, and no test asks a package index unless it says so.

tests/unit mirrors src/gpuenv and is the fast tier (seconds, no network);
everything under tests/integration is the slow tier (real venvs, installs,
compiles): the ``slow`` marker is given here by folder, never test by test, so
``-m "not slow"`` runs the unit tests and ``-m slow`` the integration ones.

``GPUENV_OFFLINE=1`` makes ``gpuenv plan`` and ``setup`` (in-process, or in a
subprocess that inherits the environment) plan from the shipped data only:
the fast tier has no network, and no test reads or writes the user's index
cache. The tests of the index reader run it against a local fake index.
"""

from __future__ import annotations

from pathlib import Path

import pytest

INTEGRATION = Path(__file__).parent / "integration"


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(INTEGRATION):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPUENV_OFFLINE", "1")
