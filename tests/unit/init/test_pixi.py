"""A pixi.toml is read as the conda environment it describes: conda specs with their channels, the PyPI
dependencies as pip lines, the Linux target's tables, each with its line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from gpuenv.errors import InputError
from gpuenv.init.pixi import read_pixi
from gpuenv.init.reposcan import scan_repo

MANIFEST = textwrap.dedent("""\
    [project]
    name = "splats"
    channels = ["nvidia/label/cuda-11.8.0", "conda-forge", "pytorch"]
    platforms = ["linux-64"]

    [tasks]
    build-ext = "pip install ./ext"

    [dependencies]
    python = ">=3.8,<3.11"
    cuda = {version = "*", channel="nvidia/label/cuda-11.8.0"}
    pytorch-cuda = {version = "11.8.*", channel="pytorch"}
    "pytorch" = { version = ">=2.2.0,<2.3", channel = "pytorch" }
    colmap = "*"

    [pypi-dependencies]
    splats = { path = ".", editable = true }
    lpips = "==0.1.4"
    viser = { version = ">=1.0", extras = ["ws"] }
    fused-ssim = { git = "https://example.invalid/fused-ssim", rev = "abc123" }

    [target.linux-64.dependencies]
    gxx = "11.*"

    [target.osx-arm64.dependencies]
    llvm-openmp = "*"

    [feature.docs.dependencies]
    sphinx = "*"
""")


def test_conda_specs_and_pypi_lines_come_with_their_lines(tmp_path: Path) -> None:
    path = tmp_path / "pixi.toml"
    path.write_text(MANIFEST)
    env = read_pixi(path)
    specs = {s.name: (s.version, s.channel, s.lineno) for s in env.specs}
    assert specs == {
        "python": (">=3.8,<3.11", None, 10),
        "cuda": (None, "nvidia/label/cuda-11.8.0", 11),
        "pytorch-cuda": ("11.8.*", "pytorch", 12),
        "pytorch": (">=2.2.0,<2.3", "pytorch", 13),
        "colmap": (None, None, 14),
        "gxx": ("11.*", None, 23),
    }  # not the macOS target's nor the docs feature's
    pip = {r.text: r.lineno for r in env.pip.requirements}
    assert pip == {
        f"-e {tmp_path}": 17,  # the project itself, editable, as pip reads "-e ." beside the manifest
        "lpips==0.1.4": 18,
        "viser[ws]>=1.0": 19,
        "fused-ssim @ git+https://example.invalid/fused-ssim@abc123": 20,
    }
    assert env.channels[0] == "nvidia/label/cuda-11.8.0"


def test_a_repository_with_a_pixi_manifest_gets_its_torch_and_cuda(tmp_path: Path) -> None:
    (tmp_path / "pixi.toml").write_text(MANIFEST)
    scan = scan_repo(tmp_path)
    assert (scan.torch_version, scan.cuda) == ("<2.3,>=2.2.0", "cu118")
    assert scan.python == ">=3.8,<3.11"
    assert {a.path: a.role for a in scan.files} == {"pixi.toml": "conda"}


def test_a_manifest_that_is_not_toml_is_refused_with_why(tmp_path: Path) -> None:
    path = tmp_path / "pixi.toml"
    path.write_text("[dependencies\npython = 3\n")
    with pytest.raises(InputError, match="not valid TOML"):
        read_pixi(path)


def test_pixi_tables_in_pyproject_toml_are_read_beside_the_package_metadata(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        textwrap.dedent("""\
            [project]
            name = "splats"
            version = "0.1"
            dependencies = ["torch>=2.1", "lpips"]

            [tool.pixi.workspace]
            channels = ["conda-forge", "pytorch", "nvidia"]
            platforms = ["linux-64"]

            [tool.pixi.dependencies]
            pytorch = { version = "2.4.*", channel = "pytorch" }
            pytorch-cuda = "12.1.*"
        """)
    )
    env = read_pixi(tmp_path / "pyproject.toml")
    assert {s.name: s.lineno for s in env.specs} == {"pytorch": 11, "pytorch-cuda": 12}
    scan = scan_repo(tmp_path)
    assert scan.cuda == "cu121"  # the only CUDA the files state
    assert [(a.path, a.role) for a in scan.files] == [("pyproject.toml", "install")]  # one line for the file
