"""`gpuenv cache export`: the cache's wheels as find-links directories, one per ABI group.

Wheels here are a few bytes with a ``.whl`` name (the export never looks inside);
pip installing from an exported group for real is tests/integration/test_export_slow.py.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from gpuenv.cache.key import CacheKey
from gpuenv.cache.wheelhouse import export_wheelhouse
from gpuenv.cache.wheels import WheelCache
from gpuenv.env.abi import EnvAbi
from gpuenv.errors import InputError
from gpuenv.plan.envplan import group_name

SCATTER = CacheKey(
    name="torch-scatter", version="2.1.2", source_sha256="ab" * 32,
    abi=EnvAbi(python_tag="cp311", platform="linux_x86_64", torch_version="2.14.1+cu130", torch_cuda="13.0",
               cxx11_abi=True),
    arch_list=("9.0",), nvcc_version="13.0", knobs=(("TORCH_CUDA_ARCH_LIST", "9.0"),),
)
CPU = dataclasses.replace(SCATTER.abi, torch_version="2.13.0+cpu", torch_cuda=None)


def store(cache: WheelCache, tmp_path: Path, key: CacheKey, file_name: str) -> None:
    wheel = tmp_path / "built" / key.digest[:8] / file_name
    wheel.parent.mkdir(parents=True)
    wheel.write_bytes(f"{key.digest}".encode())
    cache.store(key, wheel)


@pytest.fixture
def cache(tmp_path: Path) -> WheelCache:
    cache = WheelCache(tmp_path / "cache")
    scatter_wheel = "torch_scatter-2.1.2-cp311-cp311-linux_x86_64.whl"
    store(cache, tmp_path, SCATTER, scatter_wheel)
    store(cache, tmp_path, dataclasses.replace(SCATTER, arch_list=("8.0", "9.0"),
                                               knobs=(("TORCH_CUDA_ARCH_LIST", "8.0;9.0"),)), scatter_wheel)
    store(cache, tmp_path, dataclasses.replace(SCATTER, name="flash-attn", version="2.8.3", arch_list=(),
                                               nvcc_version=None, knobs=()),
          "flash_attn-2.8.3-cp311-cp311-linux_x86_64.whl")
    store(cache, tmp_path, dataclasses.replace(SCATTER, abi=CPU,
                                               arch_list=(), nvcc_version=None, knobs=()), scatter_wheel)
    return cache


def test_group_names_say_torch_build_and_archs() -> None:
    assert group_name("2.14.1+cu130", "cu130", ("8.0", "9.0")) == "torch-2.14.1-cu130-sm80-sm90"
    # PyPI's 2.14.1 is the cu130 build: same group as the PyTorch index's 2.14.1+cu130.
    assert group_name("2.14.1", "cu130", ("9.0",)) == "torch-2.14.1-cu130-sm90"
    assert group_name("2.13.0+cpu", "cpu", ()) == "torch-2.13.0-cpu"


def test_each_group_holds_the_wheels_that_run_on_its_archs(cache: WheelCache, tmp_path: Path) -> None:
    result = export_wheelhouse(cache, tmp_path / "house")
    groups = {g.name: g for g in result.groups}
    assert sorted(groups) == ["torch-2.13.0-cpu", "torch-2.14.1-cu130", "torch-2.14.1-cu130-sm80-sm90",
                              "torch-2.14.1-cu130-sm90"]
    # The 9.0 group: the exact build of torch-scatter (not the 8.0;9.0 one of the same file name)
    # and flash-attn without CUDA code.
    sm90 = tmp_path / "house" / "torch-2.14.1-cu130-sm90"
    assert sorted(p.name for p in sm90.glob("*.whl")) == [
        "flash_attn-2.8.3-cp311-cp311-linux_x86_64.whl", "torch_scatter-2.1.2-cp311-cp311-linux_x86_64.whl"]
    exact = next(e for e in cache.entries() if e.key == SCATTER)
    assert (sm90 / exact.wheel.name).read_bytes() == exact.wheel.read_bytes()
    index = (sm90 / "index.html").read_text()
    assert f'href="torch_scatter-2.1.2-cp311-cp311-linux_x86_64.whl#sha256={exact.sha256}"' in index
    # The 8.0;9.0 group gets the 8.0;9.0 build only: the 9.0 build has no code for 8.0.
    both = tmp_path / "house" / "torch-2.14.1-cu130-sm80-sm90"
    wide = next(e for e in cache.entries() if e.key.arch_list == ("8.0", "9.0"))
    assert (both / wide.wheel.name).read_bytes() == wide.wheel.read_bytes()
    assert [p.name for p in (tmp_path / "house" / "torch-2.14.1-cu130").glob("*.whl")] == [
        "flash_attn-2.8.3-cp311-cp311-linux_x86_64.whl"]
    assert "torch-2.13.0-cpu/" in (tmp_path / "house" / "index.html").read_text()
    assert any("another build of the same file name" in line for line in result.left_out)


def test_an_altered_wheel_is_left_out_and_said(cache: WheelCache, tmp_path: Path) -> None:
    entry = next(e for e in cache.entries() if e.key.name == "flash-attn")
    entry.wheel.write_bytes(b"tampered")
    result = export_wheelhouse(cache, tmp_path / "house")
    assert all("flash_attn" not in w for g in result.groups for w in g.wheels)
    assert any(line.startswith("flash_attn-2.8.3") and "bytes" in line for line in result.left_out)


def test_a_second_export_replaces_its_groups_but_never_a_foreign_directory(
    cache: WheelCache, tmp_path: Path
) -> None:
    house = tmp_path / "house"
    export_wheelhouse(cache, house)
    scatter = "torch_scatter-2.1.2-cp311-cp311-linux_x86_64.whl"
    assert (house / "torch-2.13.0-cpu" / scatter).exists()
    # Another cache's export replaces the group: the wheel the earlier export wrote goes with it.
    other = WheelCache(tmp_path / "other-cache")
    flash = "flash_attn-2.8.3-cp311-cp311-linux_x86_64.whl"
    store(other, tmp_path / "b2", dataclasses.replace(
        SCATTER, name="flash-attn", version="2.8.3", abi=CPU,
        arch_list=(), nvcc_version=None, knobs=()), flash)
    export_wheelhouse(other, house)
    assert sorted(p.name for p in (house / "torch-2.13.0-cpu").glob("*.whl")) == [flash]
    # A file gpuenv did not write, in a group it wrote, is not removed with the group.
    (house / "torch-2.13.0-cpu" / "mine.whl").write_bytes(b"my own build")
    with pytest.raises(InputError, match=r"mine\.whl: is in a wheelhouse group gpuenv wrote"):
        export_wheelhouse(other, house)
    assert (house / "torch-2.13.0-cpu" / "mine.whl").read_bytes() == b"my own build"
    foreign = tmp_path / "other"
    (foreign / "torch-2.13.0-cpu").mkdir(parents=True)
    (foreign / "torch-2.13.0-cpu" / "mine.txt").write_text("keep")
    with pytest.raises(InputError, match="not a wheelhouse group gpuenv wrote"):
        export_wheelhouse(cache, foreign)
    assert (foreign / "torch-2.13.0-cpu" / "mine.txt").read_text() == "keep"


def test_cache_export_command_and_the_plan_name_the_same_group(cache: WheelCache, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "gpuenv", "cache", "export", str(tmp_path / "house"),
                           "--cache-dir", str(cache.path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "torch-2.14.1-cu130-sm90/  2 wheel(s)" in done.stdout
    assert "pip install --no-index --find-links" in done.stdout
    recipe = tmp_path / "graph.toml"
    recipe.write_text('[torch]\nversion = "2.14.1"\n[[extensions]]\nrequirement = "torch-scatter==2.1.2"\n')
    node = {"driver_version": "580.95.05", "cuda_driver_version": "13.0",
            "gpus": [{"index": 0, "name": "H100", "uuid": "GPU-0", "compute_capability": "9.0",
                      "memory_total_mib": 81559}], "cpu_count": 8, "memory_total_mib": 65536,
            "memory_available_mib": 60000, "toolkits": [{"nvcc": "/opt/cuda/bin/nvcc", "version": "13.0"}]}
    (tmp_path / "node.json").write_text(json.dumps(node))
    plan = [sys.executable, "-m", "gpuenv", "plan", "-r", str(recipe),
            "--hardware", str(tmp_path / "node.json"), "--no-cache"]
    text = subprocess.run(plan, capture_output=True, text=True, timeout=60)
    assert "wheelhouse  torch-2.14.1-cu130-sm90 " in text.stdout, text.stdout + text.stderr
    data = json.loads(subprocess.run([*plan, "--json"], capture_output=True, text=True, timeout=60).stdout)
    assert data["wheelhouse_group"] == "torch-2.14.1-cu130-sm90"
