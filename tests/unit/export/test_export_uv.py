"""`gpuenv export uv`: the plan as [tool.uv] settings, and the merge into a pyproject.toml.

Plan-only: the settings a user gets with the real PyTorch index, checked as uv
reads them (TOML). `uv sync` of an exported project is tests/integration/test_export_slow.py.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gpuenv.env.pipconfig import PipSources
from gpuenv.errors import InputError
from gpuenv.export.uv import Table, export_uv, merge, uv_tables
from gpuenv.load.recipe import load_recipe
from gpuenv.plan.hardware import Hardware, hardware_from_json
from gpuenv.plan.planner import PlanOptions, plan
from tests.fakes import clean_env

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

GRAPH = ('[torch]\nversion = "2.13.0"\npackages = ["torchvision"]\n'
         '[[extensions]]\nrequirement = "torch-scatter==2.1.2"\n')


def node(nvcc: str) -> dict[str, Any]:
    return {"driver_version": "580.95.05", "cuda_driver_version": "13.0",
            "gpus": [{"index": 0, "name": "NVIDIA H100", "uuid": "GPU-0", "compute_capability": "9.0",
                      "memory_total_mib": 81559}], "cpu_count": 16, "memory_total_mib": 131072,
            "memory_available_mib": 120000,
            "toolkits": [{"nvcc": f"/opt/cuda-{nvcc}/bin/nvcc", "version": nvcc}]}


def export(tmp_path: Path, *args: str, recipe: str = GRAPH, nvcc: str = "13.0") -> tuple[dict[str, Any], str]:
    (tmp_path / "graph.toml").write_text(recipe)
    (tmp_path / "node.json").write_text(json.dumps(node(nvcc)))
    env = clean_env()
    done = subprocess.run([sys.executable, "-m", "gpuenv", "export", "uv", "-r", str(tmp_path / "graph.toml"),
                           "--hardware", str(tmp_path / "node.json"), *args],
                          capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return tomllib.loads(done.stdout), done.stdout


def test_a_variant_from_the_pytorch_index_is_an_explicit_index_with_torch_sourced_from_it(
    tmp_path: Path,
) -> None:
    data, text = export(tmp_path, "--cuda", "12.6", nvcc="12.6")
    uv = data["tool"]["uv"]
    assert uv["index"] == [{"name": "pytorch-cu126", "url": "https://download.pytorch.org/whl/cu126",
                            "explicit": True}]
    assert uv["sources"] == {"torch": {"index": "pytorch-cu126"}, "torchvision": {"index": "pytorch-cu126"}}
    group = data["dependency-groups"]["gpuenv"]
    assert group[0] == "torch==2.13.0" and group[1].startswith("torchvision==")
    assert "torch-scatter==2.1.2" in group
    assert uv["default-groups"] == ["gpuenv"]
    assert uv["environments"] == [f"sys_platform == 'linux' and platform_machine == '{platform.machine()}'"]
    runtime_torch = {"requirement": "torch", "match-runtime": True}
    assert uv["extra-build-dependencies"]["torch-scatter"][0] == runtime_torch
    assert {"name": "torch-scatter", "version": "2.1.2", "requires-dist": []} in uv["dependency-metadata"]
    variables = uv["extra-build-variables"]["torch-scatter"]
    assert variables["TORCH_CUDA_ARCH_LIST"] == "9.0" and variables["FORCE_CUDA"] == "1"
    assert variables["CUDA_HOME"] == "/opt/cuda-12.6"
    assert "# note: uv installs no CUDA toolkit: the builds need nvcc 12.6" in text


def test_the_variant_pypi_serves_needs_no_index(tmp_path: Path) -> None:
    data, _ = export(tmp_path)
    uv = data["tool"]["uv"]
    assert "index" not in uv and "sources" not in uv
    assert uv["extra-build-variables"]["torch-scatter"]["TORCH_CUDA_ARCH_LIST"] == "9.0"


def test_a_skipped_extension_is_said_not_dropped(tmp_path: Path) -> None:
    recipe = GRAPH + '[[extensions]]\nrequirement = "flash-attn==2.8.3.post2"\n'
    data, text = export(tmp_path, "--cuda", "cpu", recipe=recipe)
    assert data["tool"]["uv"]["index"][0]["url"] == "https://download.pytorch.org/whl/cpu"
    assert "flash-attn==2.8.3.post2" not in data["dependency-groups"]["gpuenv"]
    assert "# note: flash-attn is not exported: the plan skips it" in text


def test_with_torch_from_the_installers_configuration_the_export_names_the_uv_sync_options(
    tmp_path: Path,
) -> None:
    (tmp_path / "graph.toml").write_text(GRAPH)
    no_gpu = Hardware(driver_version=None, cuda_driver_version=None, gpus=(), cpu_count=2,
                      memory_total_mib=4096, memory_available_mib=4096)
    result = plan(load_recipe(tmp_path / "graph.toml"), no_gpu, PlanOptions(torch_index="config"))
    sources = PipSources(extra_index_urls=("file:///srv/simple",), find_links=("/srv/wheels",))
    export = uv_tables(result, sources=sources)
    assert export.source_options == ("--index", "file:///srv/simple", "--find-links", "/srv/wheels",
                                     "--index-strategy", "unsafe-best-match")
    assert any("uv sync --index file:///srv/simple --find-links /srv/wheels" in n for n in export.notes)


TABLES = (
    Table(("tool", "uv"), {"default-groups": ["gpuenv"]}),
    Table(("tool", "uv", "index"), {"name": "pytorch-cu126", "url": "https://download.pytorch.org/whl/cu126",
                                    "explicit": True}, array_entry=True),
    Table(("tool", "uv", "sources"), {"torch": {"index": "pytorch-cu126"}}),
)


def test_merge_keeps_everything_else_byte_for_byte() -> None:
    original = (
        "# my project\n[project]\nname = \"x\"  # the name\nversion = \"0\"\n\n"
        "[tool.uv]\npackage = false\n\n[tool.uv.sources]\nmylib = { path = \"../mylib\" }\n"
        "torch = { index = \"old\" }\n\n[tool.ruff]\nline-length = 99\n"
    )
    merged = merge(original, TABLES)
    assert merged == (
        "# my project\n[project]\nname = \"x\"  # the name\nversion = \"0\"\n\n"
        "[tool.uv]\npackage = false\ndefault-groups = [\"gpuenv\"]\n\n"
        "[tool.uv.sources]\nmylib = { path = \"../mylib\" }\n"
        "torch = { index = \"pytorch-cu126\" }\n\n[tool.ruff]\nline-length = 99\n\n"
        "[[tool.uv.index]]\nname = \"pytorch-cu126\"\nurl = \"https://download.pytorch.org/whl/cu126\"\n"
        "explicit = true\n"
    )
    # A second merge changes nothing: gpuenv's own entries are replaced, not repeated.
    assert merge(merged, TABLES) == merged


def test_merge_refuses_what_it_cannot_edit_safely() -> None:
    with pytest.raises(InputError, match="spans several lines"):
        merge('[tool.uv]\ndefault-groups = [\n  "dev",\n]\n', TABLES)
    with pytest.raises(InputError, match="merging would") as raised:
        merge('[tool]\nuv = { package = false }\n', TABLES)
    assert raised.value.hint is not None and "by hand" in raised.value.hint
    with pytest.raises(InputError, match="not valid TOML") as raised:
        merge("[tool.uv\n", TABLES)
    assert raised.value.hint is not None and "without --write" in raised.value.hint


def test_a_local_tree_is_a_named_path_requirement_with_its_own_version(tmp_path: Path) -> None:
    tree = tmp_path / "myext"
    tree.mkdir()
    (tree / "pyproject.toml").write_text('[project]\nname = "my-ext"\nversion = "0.3"\n')
    recipe = '[torch]\nversion = "2.13.0"\n[[extensions]]\nrequirement = "./myext"\n'
    data, _ = export(tmp_path, "--cuda", "cpu", recipe=recipe)
    assert f"my-ext @ {tree.as_uri()}" in data["dependency-groups"]["gpuenv"]
    metadata = data["tool"]["uv"]["dependency-metadata"]
    assert {"name": "my-ext", "version": "0.3", "requires-dist": []} in metadata


def test_write_into_a_file_that_cannot_be_read_is_an_input_error(tmp_path: Path) -> None:
    (tmp_path / "graph.toml").write_text(GRAPH)
    (tmp_path / "pyproject.toml").mkdir()
    recipe, hardware = load_recipe(tmp_path / "graph.toml"), hardware_from_json(node("13.0"))
    with pytest.raises(InputError, match=r"cannot read .*pyproject\.toml: not a regular file") as raised:
        export_uv(plan(recipe, hardware), PlanOptions(), write=tmp_path / "pyproject.toml")
    assert raised.value.hint is not None and "without --write" in raised.value.hint
    with pytest.raises(InputError, match="does not exist"):
        export_uv(plan(recipe, hardware), PlanOptions(), write=tmp_path / "absent.toml")


def test_merge_keeps_crlf_line_ends_byte_for_byte_and_gives_its_own_lines_the_same() -> None:
    original = ("# my project\r\n[project]\r\nname = \"x\"\r\n\r\n[tool.uv]\r\npackage = false\r\n"
                "\r\n[tool.uv.sources]\r\ntorch = { index = \"old\" }\r\n")
    merged = merge(original, TABLES)
    assert merged.startswith(original[:original.index("\r\n[tool.uv.sources]")])
    assert "\n" not in merged.replace("\r\n", ""), "every line ends as the file's lines do"
    assert merge(merged, TABLES) == merged
    assert merge(original.replace("\r\n", "\n"), TABLES) == merged.replace("\r\n", "\n")


def test_write_keeps_the_files_bytes_and_refuses_a_place_outside_or_read_only(tmp_path: Path) -> None:
    (tmp_path / "graph.toml").write_text(GRAPH)
    recipe, hardware = load_recipe(tmp_path / "graph.toml"), hardware_from_json(node("13.0"))
    project = tmp_path / "project"
    project.mkdir()
    crlf = b"[project]\r\nname = \"x\"\r\nversion = \"0\"\r\n"
    (project / "pyproject.toml").write_bytes(crlf)
    export_uv(plan(recipe, hardware), PlanOptions(), write=project / "pyproject.toml")
    data = (project / "pyproject.toml").read_bytes()
    assert data.startswith(crlf) and b"\n" not in data.replace(b"\r\n", b"")
    outside = tmp_path / "shared.toml"
    outside.write_bytes(crlf)
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "pyproject.toml").symlink_to(outside)
    with pytest.raises(InputError, match="leads out of"):
        export_uv(plan(recipe, hardware), PlanOptions(), write=linked / "pyproject.toml")
    assert outside.read_bytes() == crlf
    outside.chmod(0o444)
    with pytest.raises(InputError, match="read-only"):
        export_uv(plan(recipe, hardware), PlanOptions(), write=outside)
    assert outside.read_bytes() == crlf
