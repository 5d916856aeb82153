"""The GPU check's tests use the probe tests' fake libnvidia-ml.so.1 (compiled once per session)."""

from __future__ import annotations

from tests.unit.probe.conftest import fake_nvml_dir

__all__ = ["fake_nvml_dir"]
