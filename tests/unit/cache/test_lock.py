"""The lock's record of an extension's source: when it may stand for a fetch."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gpuenv.env.abi import EnvAbi
from gpuenv.lock.lockfile import LockedEnv, LockedExtension, LockedSource

SDIST = "sha256:" + "ab" * 32


def locked(*records: LockedExtension) -> LockedEnv:
    return LockedEnv(
        name="default", recipe="default.toml", recipe_sha256="0" * 64, fingerprint="f" * 64,
        variant="cpu", cuda=None, index_url=None, torch_requirement="torch==2.13.0", arch_list=(),
        toolkit=None, extensions=records, distributions={},
        abi=EnvAbi(python_tag="cp311", platform="linux_x86_64", torch_version="2.13.0+cpu", torch_cuda=None,
                   cxx11_abi=True),
    )


SCATTER = LockedExtension(
    name="torch-scatter", version="2.1.2", requirement="torch-scatter==2.1.2", cache_key="k" * 64,
    wheel="torch_scatter-2.1.2-cp311-cp311-linux_x86_64.whl", wheel_sha256="0" * 64, source=SDIST,
    arch_list=(),
)


@pytest.mark.parametrize("requirement", [
    "torch-scatter==2.1.2",
    "torch_scatter==2.1.2",          # the same project, spelled otherwise
    "torch-scatter==2.1.2.0",        # the same version, spelled otherwise
    "torch-scatter===2.1.2",
    "torch-scatter[extra]==2.1.2",   # extras do not change the source
])
def test_an_exact_pin_from_an_index_takes_the_locked_sdist(requirement: str) -> None:
    assert locked(SCATTER).source_of(requirement) == LockedSource(version="2.1.2", digest=SDIST)


def test_a_lock_written_from_a_range_serves_the_pin_of_its_version() -> None:
    # --locked turns the recipe's range into the lock's exact version.
    ranged = replace(SCATTER, requirement="torch-scatter>=2.1")
    assert locked(ranged).source_of("torch-scatter==2.1.2") == LockedSource(version="2.1.2", digest=SDIST)


@pytest.mark.parametrize(("requirement", "why"), [
    ("torch-scatter>=2.1", "a range can resolve to a newer release"),
    ("torch-scatter==2.1.*", "a wildcard pin is a range"),
    ("torch-scatter", "no version at all"),
    ("torch-scatter==2.1.3", "another version than the lock built"),
    ("torch-sparse==2.1.2", "another project"),
    ("torch-scatter @ https://example.invalid/torch_scatter-2.1.2.tar.gz", "a URL can serve other bytes"),
    ("git+https://example.invalid/rusty1s/pytorch_scatter@2.1.2", "a git ref can move"),
    ("./vendor/torch_scatter", "a local tree changes under its path"),
])
def test_anything_but_an_exact_index_pin_is_fetched(requirement: str, why: str) -> None:
    assert locked(SCATTER).source_of(requirement) is None, why


@pytest.mark.parametrize(("record", "why"), [
    (replace(SCATTER, requirement="torch-scatter @ https://example.invalid/x.tar.gz"),
     "the lock's sdist came from a URL, not from the index"),
    (replace(SCATTER, requirement="/src/torch_scatter"), "the lock's source was a local tree"),
    (replace(SCATTER, source="git:0123456789abcdef0123456789abcdef01234567"), "no sdist hash"),
    (replace(SCATTER, version="2.1.2+pt213cpu"), "the locked wheel's version is not the pin"),
])
def test_a_lock_record_not_naming_the_index_sdist_is_not_used(record: LockedExtension, why: str) -> None:
    assert locked(record).source_of("torch-scatter==2.1.2") is None, why


def test_no_record_no_source() -> None:
    assert locked().source_of("torch-scatter==2.1.2") is None
