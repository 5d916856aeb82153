"""The real configured index (pip's, as `pip config list` shows it): what it says today is planned.

Slow tier: it asks the network. On the machine this was written on (2026-12-04) the newest torch on
the index is 2.15.0; the test asserts what must hold on any later day too: the plan takes the newest
torch the index lists and pins its torchvision. That machine's pip also has a constraint file capping
torch at 2.14.1 (pip would refuse 2.15.0 there, and so the plan passes it over, saying why): the
test lifts it with PIP_CONSTRAINT="", as a user would.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from packaging.version import Version

from tests.fakes import clean_env

NODE = {"driver_version": "580.65.06", "cuda_driver_version": "13.0", "gpus": [], "cpu_count": 16,
        "memory_total_mib": 65536, "memory_available_mib": 60000, "toolkits": []}


def test_the_configured_index_plans_the_newest_torch_with_its_torchvision(tmp_path: Path) -> None:
    (tmp_path / "recipe.toml").write_text('[torch]\nversion = ">=2.1"\npackages = ["torchvision"]\n')
    (tmp_path / "node.json").write_text(json.dumps(NODE))
    env = clean_env(keep_offline=False, GPUENV_CACHE_DIR=str(tmp_path / "cache"), PIP_CONSTRAINT="")
    done = subprocess.run([sys.executable, "-m", "gpuenv", "plan", "-r", str(tmp_path / "recipe.toml"),
                           "--hardware", str(tmp_path / "node.json"), "--gpu", "H100", "--json"],
                          env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert Version(data["torch_version"]) >= Version("2.15.0"), data["passed_over"]
    (torchvision,) = data["torch_packages"]
    assert torchvision.startswith("torchvision==")
    read = [s for s in data["knowledge"]["sources"] if s["kind"] == "index" and s["note"] == "read now"]
    assert read, data["knowledge"]
