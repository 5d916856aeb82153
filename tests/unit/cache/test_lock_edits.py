"""gpuenv.lock edited by hand, damaged or half-written: reported, never trusted, never a traceback."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path

import pytest

from gpuenv.errors import InputError
from gpuenv.load.recipe import load_recipe
from gpuenv.lock.lockfile import LockEditedError, read_lock, write_lock
from gpuenv.lock.lockplan import plan_locked
from gpuenv.plan.hardware import Hardware
from gpuenv.plan.planner import PlanOptions, plan
from gpuenv.setup.context import SetupOptions
from gpuenv.setup.lockstep import lock_entry
from tests.unit.cache.test_lock import SCATTER, locked

NO_GPU = Hardware(driver_version=None, cuda_driver_version=None, gpus=(), cpu_count=2,
                  memory_total_mib=8192, memory_available_mib=4096, source="test")
TORCH = replace(SCATTER, arch_list=("9.0",), knobs={"FORCE_CUDA": "1"})
ENV = replace(locked(TORCH), distributions={"torch": "2.13.0+cpu", "six": "1.17.0"})


class Said:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def step(self, text: str) -> None:
        self.lines.append(text)

    def status(self, text: str) -> None:
        pass

    def done(self, text: str) -> None:
        self.lines.append(text)


def test_an_entry_reads_back_as_written_with_its_digest(tmp_path: Path) -> None:
    lock = tmp_path / "gpuenv.lock"
    write_lock(lock, ENV)
    (back,) = read_lock(lock).values()
    assert back == ENV and back.edited is None
    assert f'digest = "{ENV.digest}"' in lock.read_text()


#: A full entry as gpuenv writes it: the file's text, and the digest beside it, are a format.
FULL = replace(ENV, cuda="13.0", variant="cu130", index_url="https://download.pytorch.org/whl/cu130",
               toolkit="13.0.88", abi=replace(ENV.abi, torch_version="2.14.1+cu130", torch_cuda="13.0"),
               arch_list=("9.0",),
               torch_arch_list=("9.0", "12.0+PTX"), torch_cxx_standard=20, torch_given=True)
FULL_TEXT = """\
# gpuenv.lock: written by `gpuenv setup`. `gpuenv setup --locked` rebuilds exactly this;
# `gpuenv doctor` checks an environment against it. Edit the recipe, not this file.
lock-version = 1

[envs.default]
recipe = "default.toml"
recipe-sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
fingerprint = "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
# sha256 of this entry's content: an entry edited by hand is reported, not trusted
digest = "sha256:93446db025e2ac771062629b53598865e848dca07cf15a3ebfb9af674da3bd74"
# the plan's decisions
variant = "cu130"
cuda = "13.0"
index-url = "https://download.pytorch.org/whl/cu130"  # empty: the ordinary index
torch-requirement = "torch==2.13.0"
arch-list = ["9.0"]
toolkit = "13.0.88"  # nvcc version the extensions were built with
python = "cp311"
platform = "linux_x86_64"

[envs.default.torch]
version = "2.14.1+cu130"
cuda = "13.0"
cxx11-abi = true
arch-list = ["9.0", "12.0+PTX"]  # what its wheel carries, as observed
cxx-standard = 20  # what its headers require, as observed
given = true  # the env's own torch: recorded, never installed nor replaced

[[envs.default.extensions]]
name = "torch-scatter"
version = "2.1.2"
requirement = "torch-scatter==2.1.2"
cache-key = "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"
wheel = "torch_scatter-2.1.2-cp311-cp311-linux_x86_64.whl"
wheel-sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
source = "sha256:abababababababababababababababababababababababababababababababab"
arch-list = ["9.0"]
knobs = { FORCE_CUDA = "1" }

[envs.default.distributions]
six = "1.17.0"
torch = "2.13.0+cpu"
"""


def test_the_file_and_the_digests_are_pinned(tmp_path: Path) -> None:
    """Locks written before read back as untouched: the text, and the digest of an entry written before
    the observed facts existed (``ENV``), are what gpuenv has always written."""
    lock = tmp_path / "gpuenv.lock"
    write_lock(lock, FULL)
    assert lock.read_text(encoding="utf-8") == FULL_TEXT
    assert read_lock(lock) == {"default": FULL}
    assert ENV.digest == "sha256:471776fe51acd0587b8f443685a018037c495b480570d715245150d69622555c"


@pytest.mark.parametrize(("before", "after"), [
    ('version = "2.13.0+cpu"', 'version = "2.99.0+cpu"'),   # the torch build
    ('six = "1.17.0"', 'six = "1.16.0"'),                     # a distribution
    ('cache-key = "kkkk', 'cache-key = "jkkk'),               # an extension's cache key
    ('variant = "cpu"', 'variant = "cu130"'),                 # a plan decision
    ('arch-list = ["9.0"]', 'arch-list = ["8.0"]'),           # an arch list
])
def test_an_entry_edited_by_hand_is_reported_and_not_trusted(tmp_path: Path, before: str, after: str) -> None:
    lock = tmp_path / "gpuenv.lock"
    write_lock(lock, ENV)
    write_lock(lock, replace(ENV, name="other"))
    text = lock.read_text()
    assert before in text
    lock.write_text(text.replace(before, after, 1))
    envs = read_lock(lock)
    assert envs["default"].edited and envs["other"].edited is None

    said = Said()
    recipe = tmp_path / "default.toml"
    recipe.write_text('[torch]\nversion = "2.13.0"\n')
    planned = plan(load_recipe(recipe), NO_GPU, PlanOptions(torch_index="config"))
    assert lock_entry(planned, SetupOptions(venv=tmp_path / "venv", lock_file=lock), said) is None
    assert any("gpuenv.lock was edited by hand: envs.default" in line for line in said.lines)

    with pytest.raises(LockEditedError) as caught:
        plan_locked(load_recipe(recipe), NO_GPU, envs["default"], PlanOptions(torch_index="config"))
    assert caught.value.exit_code == 2 and "edited by hand" in str(caught.value)

    # Writing the other entry keeps the edit detectable; writing this one replaces it.
    write_lock(lock, replace(ENV, name="other"))
    assert read_lock(lock)["default"].edited
    write_lock(lock, ENV)
    assert read_lock(lock)["default"].edited is None


@pytest.mark.parametrize("content", [
    b"lock-version = 1\nenvs = \"x\"\n",
    b"lock-version = 1\n[envs.a]\nrecipe = 5\n",
    b"lock-version = 1\n# \xff\xfe not UTF-8\n",
    b"lock-version = 1\nx = " + b"[" * 5000 + b"]" * 5000 + b"\n",
    b"lock-version = 1\nx = " + b"1" * 5000 + b"\n",
    b"lock-version = 1\n[envs.a]\ntorch = 1\n",
    b"lock-version = 1\n[envs.a.torch]\ncxx11-abi = \"yes\"\n",
])
def test_a_damaged_lock_is_an_input_error(tmp_path: Path, content: bytes) -> None:
    lock = tmp_path / "gpuenv.lock"
    lock.write_bytes(content)
    with pytest.raises(InputError) as caught:
        read_lock(lock)
    assert caught.value.exit_code == 2 and caught.value.hint


def test_a_lock_that_is_a_fifo_is_refused_without_waiting(tmp_path: Path) -> None:
    lock = tmp_path / "gpuenv.lock"
    os.mkfifo(lock)
    with pytest.raises(InputError, match="not a regular file"):
        read_lock(lock)


def test_a_temporary_lock_left_by_a_killed_writer_is_removed_by_the_next_write(tmp_path: Path) -> None:
    lock = tmp_path / "gpuenv.lock"
    stale = tmp_path / ".gpuenv.lock.abc123"
    stale.write_text("half a lock")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    fresh = tmp_path / ".gpuenv.lock.def456"  # a writer at work right now: left alone
    fresh.write_text("being written")
    write_lock(lock, ENV)
    assert not stale.exists() and fresh.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".gpuenv.lock.def456", "gpuenv.lock"]


# -- the observed torch (issue 21: observed beats shipped; issue 23: a given torch) -------------------


OBSERVED = replace(ENV, torch_arch_list=("8.0", "9.0+PTX"), torch_cxx_standard=20, torch_given=True)


def test_the_observed_torch_reads_back_as_written(tmp_path: Path) -> None:
    lock = tmp_path / "gpuenv.lock"
    write_lock(lock, OBSERVED)
    text = lock.read_text()
    assert 'arch-list = ["8.0", "9.0+PTX"]' in text and "cxx-standard = 20" in text and "given = true" in text
    (back,) = read_lock(lock).values()
    assert back == OBSERVED and back.edited is None
    lock.write_text(text.replace("cxx-standard = 20", "cxx-standard = 17"))
    assert read_lock(lock)["default"].edited, "the observed facts are part of the entry's digest"


def test_an_entry_written_before_the_observed_facts_keeps_its_digest(tmp_path: Path) -> None:
    lock = tmp_path / "gpuenv.lock"
    write_lock(lock, ENV)
    text = lock.read_text()
    assert "cxx-standard" not in text and "given" not in text
    (back,) = read_lock(lock).values()
    assert back.edited is None and back.torch_arch_list == () and back.torch_cxx_standard is None
    assert not back.torch_given


def test_locked_on_another_node_needs_the_very_torch_the_lock_was_given(tmp_path: Path) -> None:
    from gpuenv.errors import UnsatisfiableError
    from gpuenv.plan.giventorch import TorchFacts

    recipe = tmp_path / "ngc.toml"
    recipe.write_text('[torch]\nuse = "existing"\n')
    ngc = TorchFacts("2.5.0a0+872d972e41.nv24.08", "12.6", ("8.0", "9.0+PTX"), True, 17, where="in /usr")
    given = replace(ENV, variant="cu126", cuda="12.6", torch_requirement=ngc.requirement, arch_list=("9.0",),
                    abi=replace(ENV.abi, torch_version=ngc.version, torch_cuda="12.6"), torch_given=True)
    same = plan_locked(load_recipe(recipe), NO_GPU, given, PlanOptions(given_torch=ngc))
    assert same.torch == ngc.requirement and same.index_url is None and same.arch_list == ("9.0",)
    assert same.packages == (), "an adopted env's other distributions are its own, not the lock's to pin"
    for other in (replace(ngc, version="2.5.0a0+872d972e41.nv24.09"), replace(ngc, cxx11_abi=False), None):
        with pytest.raises(UnsatisfiableError, match=r"built against torch 2\.5\.0a0") as caught:
            plan_locked(load_recipe(recipe), NO_GPU, given, PlanOptions(given_torch=other))
        assert caught.value.exit_code == 3
