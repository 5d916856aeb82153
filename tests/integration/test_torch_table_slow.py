"""torch.toml's arch sets against the table torch itself ships: ``PYTORCH_RELEASES_CODE_CC`` in
``torch/cuda/__init__.py`` (torch 2.13 on), the TORCH_CUDA_ARCH_LIST of each CUDA build of that release,
which PyTorch keeps in sync with its build script. The session's torch 2.13.0 env holds the file.
"""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

from gpuenv.plan import knowledge
from gpuenv.plan.packagedata import data_file


def _releases_table(venv: Path) -> dict[str, dict[str, set[int]]]:
    found = list(venv.glob("lib/python*/site-packages/torch/cuda/__init__.py"))
    assert found, f"no torch/cuda/__init__.py in {venv}"
    for node in ast.parse(found[0].read_text(encoding="utf-8")).body:
        target = node.target if isinstance(node, ast.AnnAssign) else (
            node.targets[0] if isinstance(node, ast.Assign) else None)
        named = isinstance(target, ast.Name) and target.id == "PYTORCH_RELEASES_CODE_CC"
        if named and isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            table: dict[str, dict[str, set[int]]] = ast.literal_eval(node.value)
            return table
    raise AssertionError(f"{found[0]} has no PYTORCH_RELEASES_CODE_CC")


def test_each_cuda_build_of_the_installed_torch_has_the_archs_its_own_table_gives(
        cpu_setup: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    venv, _ = cpu_setup
    table = _releases_table(venv)
    release = knowledge.torch_releases()["2.13"]
    unverified = " ".join(data_file("torch.toml")["releases"]["2.13"].get("unverified", []))
    compared = []
    for cuda, hosts in table.items():
        variant = "cu" + cuda.replace(".", "")
        if variant not in release.variants:
            # A build the table names that the data does not list must be said to be left out.
            assert f"PYTORCH_RELEASES_CODE_CC['{cuda}']" in unverified, (variant, unverified)
            continue
        archs = release.archs(variant, from_pypi=False)
        assert {int(a.removesuffix("+PTX").replace(".", "")) for a in archs} == hosts["x86_64"], variant
        compared.append(variant)
    assert compared, "no CUDA build of the data was compared"
