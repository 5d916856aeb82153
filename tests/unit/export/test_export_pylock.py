"""`gpuenv export pylock`: what the installer recorded becomes PEP 751 entries.

Installing an exported pylock with uv is tests/integration/test_export_slow.py.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from gpuenv.export.pylock import Artifact, LockedPackage, Pylock, artifact_from_direct_url

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def test_a_wheel_installed_by_url_keeps_its_url_and_recorded_hash() -> None:
    artifact = artifact_from_direct_url({
        "url": "https://files.example/pkgs/six-1.17.0-py2.py3-none-any.whl",
        "archive_info": {"hash": "sha256=" + "a" * 64, "hashes": {"sha256": "a" * 64}},
    })
    assert artifact == Artifact("wheel", url="https://files.example/pkgs/six-1.17.0-py2.py3-none-any.whl",
                                sha256="a" * 64)
    assert artifact.file_name == "six-1.17.0-py2.py3-none-any.whl"


def test_a_local_file_is_a_path_and_hashed_when_the_installer_recorded_no_hash(tmp_path: Path) -> None:
    wheel = tmp_path / "torch-2.13.0+cpu-cp311-cp311-linux_x86_64.whl"
    wheel.write_bytes(b"not really a wheel")
    artifact = artifact_from_direct_url({"url": wheel.as_uri(), "archive_info": {}})
    assert artifact is not None
    assert artifact.path == str(wheel) and artifact.url is None
    assert artifact.sha256 == hashlib.sha256(b"not really a wheel").hexdigest()
    assert artifact.file_name == wheel.name


def test_directories_and_vcs_checkouts_are_recorded_as_such(tmp_path: Path) -> None:
    directory = artifact_from_direct_url({"url": tmp_path.as_uri(), "dir_info": {"editable": True}})
    assert directory == Artifact("directory", path=str(tmp_path), editable=True)
    vcs = artifact_from_direct_url({"url": "https://git.example/apex.git",
                                    "vcs_info": {"vcs": "git", "commit_id": "c0ffee"}})
    assert vcs is not None and vcs.kind == "vcs" and vcs.commit == "c0ffee"


def test_the_rendered_lock_is_pep_751_toml_with_gpuenvs_facts_in_its_tool_tables() -> None:
    lock = Pylock(
        packages=(
            LockedPackage("torch", "2.13.0+cpu", Artifact("wheel", path="/opt/w/torch-2.13.0+cpu-cp311-cp311-"
                                                           "linux_x86_64.whl", sha256="b" * 64), ">=3.10"),
            LockedPackage("torch-scatter", "2.1.2",
                          Artifact("wheel", path="/cache/v1/3f/3f00/torch_scatter-2.1.2-cp311-cp311-"
                                                 "linux_x86_64.whl", sha256="c" * 64),
                          tool={"cache-key": "3f00", "arch-list": ["9.0"]}),
            LockedPackage("mylib", "0.1", Artifact("directory", path="/src/mylib", editable=True)),
        ),
        tool={"variant": "cu130", "arch-list": ["9.0"], "torch": "2.13.0+cu130"},
        environment="sys_platform == 'linux'",
    )
    data = tomllib.loads(lock.render())
    assert data["lock-version"] == "1.0" and data["created-by"] == "gpuenv"
    assert data["environments"] == ["sys_platform == 'linux'"]
    torch, scatter, mylib = data["packages"]
    assert torch["wheels"] == [{"name": "torch-2.13.0+cpu-cp311-cp311-linux_x86_64.whl",
                                "path": "/opt/w/torch-2.13.0+cpu-cp311-cp311-linux_x86_64.whl",
                                "hashes": {"sha256": "b" * 64}}]
    assert torch["requires-python"] == ">=3.10"
    assert scatter["tool"]["gpuenv"] == {"cache-key": "3f00", "arch-list": ["9.0"]}
    assert mylib["directory"] == {"path": "/src/mylib", "editable": True}
    assert data["tool"]["gpuenv"]["variant"] == "cu130"
