"""The state file's record of an extension an earlier run installed: trusted only when it is whole.

A resumed setup skips an extension whose record in ``<venv>/gpuenv-state.json``
names the same cache key and a distribution the env holds; a damaged record
(a field missing or of the wrong type) must not be trusted: the extension is
installed again (looked up in the cache, else built) rather than reported as
"already installed".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gpuenv.env.targetenv import TorchInfo
from gpuenv.lock.lockfile import LockedExtension
from gpuenv.setup.context import STATE_FILE, Context, load_state
from gpuenv.setup.extension import _already_there, _state_from_locked, cache_key
from tests.unit.setup.test_observed import landed, torch_dir

#: A field the damaged record lacks.
DROP = object()


def resumed(tmp_path: Path, damage: dict[str, Any] | None) -> tuple[Context, str | None]:
    """A setup resumed over an env whose state file records torch-scatter (damaged by ``damage``)."""
    info = TorchInfo("2.14.1+cu130", "13.0", True, ("sm_90",), distribution="2.14.1",
                     path=str(torch_dir(tmp_path / "t", cxx=20)))
    ctx, _ = landed(tmp_path, info)
    ext = ctx.plan.extensions[0]
    key = cache_key(ctx, ext, version="2.1.2", source_digest="0" * 64)
    record = _state_from_locked(LockedExtension(
        name="torch-scatter", version="2.1.2", requirement="torch-scatter==2.1.2", cache_key=key.digest,
        wheel="torch_scatter-2.1.2-cp311-cp311-linux_x86_64.whl", wheel_sha256="1" * 64, source="sdist",
        arch_list=("9.0",), knobs={}))
    record.update(damage or {})
    record = {k: v for k, v in record.items() if v is not DROP}
    (ctx.options.venv / STATE_FILE).write_text(json.dumps({"extensions": {ext.name: record}}))
    ctx.state = load_state(ctx.options.venv)
    return ctx, _already_there(ctx, ext, key, {"torch": "2.14.1", "torch-scatter": "2.1.2"})


def test_a_whole_record_of_the_same_key_is_already_installed(tmp_path: Path) -> None:
    ctx, outcome = resumed(tmp_path, None)
    assert outcome == "torch-scatter 2.1.2 already installed, built for torch 2.14.1+cu130"
    assert ctx.reused == ["torch-scatter"]
    assert [e.name for e in ctx.locked] == ["torch-scatter"]


@pytest.mark.parametrize("damage", [
    {"wheel-sha256": DROP},
    {"source": DROP},
    {"version": 2},
    {"requirement": None},
    {"arch-list": "9.0"},
    {"knobs": ["FORCE_CUDA=1"]},
], ids=["no-sha256", "no-source", "version-not-text", "requirement-null", "arch-list-not-list",
        "knobs-not-table"])
def test_a_damaged_record_is_not_trusted(tmp_path: Path, damage: dict[str, Any]) -> None:
    ctx, outcome = resumed(tmp_path, damage)
    assert outcome is None, "the extension is installed again, not claimed as already there"
    assert ctx.reused == [] and ctx.locked == []


def test_a_record_of_another_key_is_not_this_build(tmp_path: Path) -> None:
    ctx, outcome = resumed(tmp_path, {"cache-key": "f" * 64})
    assert outcome is None and ctx.reused == []


def test_saving_the_state_never_writes_through_a_link_left_at_a_temporary_name(tmp_path: Path) -> None:
    """Campaign 3: the state was written to the fixed name ``gpuenv-state.tmp`` first, following
    a link someone left there (out of the env); now it goes through write_atomic, like every file."""
    ctx, _ = resumed(tmp_path, None)
    outside = tmp_path / "outside.txt"
    outside.write_text("keep\n")
    (ctx.options.state_dir / "gpuenv-state.tmp").symlink_to(outside)
    ctx.save_state()
    assert outside.read_text() == "keep\n"
    assert load_state(ctx.options.state_dir)["extensions"].keys() == {"torch-scatter"}
