"""How a cache key travels with a wheel to a server: its build tag and the key file packed inside."""

from __future__ import annotations

import dataclasses
import re
import zipfile
from pathlib import Path

import pytest
from packaging.utils import parse_wheel_filename

from gpuenv.cache.key import CacheKey
from gpuenv.cache.remotekey import (
    KEY_FILE,
    RemoteKeyError,
    digest_in_name,
    local_name,
    read_key,
    remote_name,
    verify,
    with_key,
)
from gpuenv.cache.wheelfile import WheelFileError, add_dist_info_file, check_wheel
from gpuenv.env.abi import ABI_FIELDS, EnvAbi
from tests.unit.cache.wheelmaker import make_wheel

KEY = CacheKey(
    name="torch-scatter", version="2.1.2", source_sha256="ab" * 32,
    abi=EnvAbi(python_tag="cp311", platform="linux_x86_64", torch_version="2.14.1+cu130", torch_cuda="13.0",
               cxx11_abi=True),
    arch_list=("9.0",), nvcc_version="13.0.88", knobs=(("TORCH_CUDA_ARCH_LIST", "9.0"),),
)
FILE = "torch_scatter-2.1.2-cp311-cp311-linux_x86_64.whl"


def changed(key: CacheKey, **change: object) -> CacheKey:
    """``key`` with these fields changed, the ABI's among them."""
    abi = {name: change.pop(name) for name in ABI_FIELDS if name in change}
    return dataclasses.replace(key, abi=dataclasses.replace(key.abi, **abi), **change)  # type: ignore[arg-type]


@pytest.fixture
def built(tmp_path: Path) -> Path:
    return make_wheel(tmp_path / "built", FILE, {"torch_scatter/_scatter.so": b"\x7fELF not really",
                                                 "torch_scatter/__init__.py": b"x = 1\n"})


def test_the_name_holds_the_whole_key_digest_as_a_build_tag_installers_accept() -> None:
    name = remote_name(FILE, KEY)
    assert digest_in_name(name) == KEY.digest
    dist, version, build, tags = parse_wheel_filename(name)
    assert (dist, str(version)) == ("torch-scatter", "2.1.2"), "the package's own version is kept"
    assert build and build[0] == 1
    assert {str(t) for t in tags} == {"cp311-cp311-linux_x86_64"}
    assert local_name(name) == FILE
    assert digest_in_name(FILE) is None


@pytest.mark.parametrize("change", [
    {"torch_version": "2.14.0+cu130"}, {"cxx11_abi": False}, {"arch_list": ("8.0", "9.0")},
    {"torch_cuda": "12.8"}, {"nvcc_version": "13.0.48"}, {"knobs": ()},
])
def test_two_abis_never_share_a_name_on_the_server(change: dict[str, object]) -> None:
    other = changed(KEY, **change)
    assert remote_name(FILE, other) != remote_name(FILE, KEY)


def test_a_build_tag_the_wheel_had_is_replaced_not_kept() -> None:
    tagged = "torch_scatter-2.1.2-7local-cp311-cp311-linux_x86_64.whl"
    assert remote_name(tagged, KEY) == remote_name(FILE, KEY)


def test_the_pushed_wheel_packs_the_key_in_its_record_and_the_same_input_gives_the_same_bytes(
    built: Path, tmp_path: Path
) -> None:
    first = with_key(built, KEY, tmp_path / "one")
    second = with_key(built, KEY, (tmp_path / "two"))
    assert first.read_bytes() == second.read_bytes(), "a push repeated after a cut-off sends the same file"
    check_wheel(first)  # every file, the key file included, matches RECORD
    assert read_key(first) == KEY
    with zipfile.ZipFile(first) as archive:
        assert f"torch_scatter-2.1.2.dist-info/{KEY_FILE}" in archive.namelist()
        assert archive.read("torch_scatter/_scatter.so") == b"\x7fELF not really"
    again = with_key(first, KEY, tmp_path / "three")  # a wheel fetched from a cache, pushed again
    assert again.read_bytes() == first.read_bytes()
    verify(first, KEY)


def test_a_wheel_renamed_to_another_keys_name_is_refused(built: Path, tmp_path: Path) -> None:
    other = changed(KEY, torch_version="2.13.0+cu130")
    keyed = with_key(built, other, tmp_path / "out")
    renamed = keyed.with_name(remote_name(FILE, KEY))
    keyed.rename(renamed)
    with pytest.raises(RemoteKeyError, match=re.escape("not the one its name gives: torch 2.13")):
        verify(renamed, KEY)
    with pytest.raises(RemoteKeyError, match="its name holds key"):
        verify(renamed, other)


def test_a_wheel_without_a_key_file_is_refused(built: Path, tmp_path: Path) -> None:
    renamed = tmp_path / remote_name(FILE, KEY)
    renamed.write_bytes(built.read_bytes())
    with pytest.raises(RemoteKeyError, match=re.escape("holds no gpuenv-cache-key.json")):
        verify(renamed, KEY)


def test_a_cut_off_or_altered_wheel_is_refused(built: Path, tmp_path: Path) -> None:
    keyed = with_key(built, KEY, tmp_path / "out")
    data = keyed.read_bytes()
    keyed.write_bytes(data[: len(data) // 2])
    with pytest.raises(RemoteKeyError, match="not a readable wheel"):
        verify(keyed, KEY)

    altered = with_key(built, KEY, tmp_path / "again")
    with zipfile.ZipFile(altered) as archive:
        members = {i.filename: archive.read(i) for i in archive.infolist()}
    members["torch_scatter/_scatter.so"] = b"\x7fELF changed"
    with zipfile.ZipFile(altered, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    with pytest.raises(RemoteKeyError, match=re.escape("_scatter.so does not match its RECORD")):
        verify(altered, KEY)


def test_a_file_not_in_record_is_refused(built: Path, tmp_path: Path) -> None:
    keyed = with_key(built, KEY, tmp_path / "out")
    with zipfile.ZipFile(keyed, "a") as archive:
        archive.writestr("torch_scatter/extra.py", b"import os\n")
    with pytest.raises(WheelFileError, match=re.escape("extra.py is in the wheel but not in its RECORD")):
        check_wheel(keyed)


@pytest.mark.parametrize("document", [b"[" * 100_000 + b"]" * 100_000, b'{"key": {"size": 1e999}}'],
                         ids=["nested-100000-deep", "infinite-number"])
def test_a_key_file_too_deep_or_infinite_is_refused_in_words(
    built: Path, tmp_path: Path, document: bytes
) -> None:
    """Campaign 3: the key file of a wheel on a shared cache was read with json.loads; 100000 brackets
    raised RecursionError, a traceback. It goes through parse_json, as every JSON gpuenv reads."""
    wheel = tmp_path / remote_name(FILE, KEY)
    add_dist_info_file(built, wheel, KEY_FILE, document)
    with pytest.raises(RemoteKeyError, match="does not read as a cache key"):
        read_key(wheel)
