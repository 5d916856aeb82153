"""The slow tests of tests/unit/setup/test_targetenv.py.

Real venvs, installs and compiles: tests/integration is the slow tier, by folder.
"""

from __future__ import annotations

import sys

from gpuenv.env.distinfo import installed_on_disk
from gpuenv.env.targetenv import TargetEnv, TorchInfo
from tests.unit.setup.conftest import TORCH_VERSION, TorchEnv
from tests.unit.setup.test_targetenv import _asked


def test_the_real_env_reports_its_torch_and_tags(torch_env: TorchEnv) -> None:
    env, runner = torch_env.env, torch_env.runner
    info = env.torch_info(runner)
    assert info is not None
    assert (info.version, info.cuda, info.variant) == (TORCH_VERSION, None, "cpu")
    assert isinstance(info.cxx11_abi, bool)
    assert env.installed(runner)["torch"] == TORCH_VERSION
    interpreter = env.interpreter(runner)
    assert interpreter.python_tag == f"cp{sys.version_info[0]}{sys.version_info[1]}"
    assert interpreter.platform_tag.startswith(("linux_", "macosx_", "win"))
    assert (env.site_packages(runner) / "torch").is_dir()
    checked = env.check(runner, ["torch.nn"])
    assert checked.torch == info and checked.failures == {} and checked.installed["torch"] == TORCH_VERSION
    again, created = TargetEnv.ensure(env.path, runner)
    assert not created and again.path == env.path


def test_torchs_files_say_what_importing_it_says(torch_env: TorchEnv) -> None:
    env, runner = torch_env.env, torch_env.runner
    imported = env.torch_info(runner)
    assert imported is not None
    env.changed()
    from_files = env.facts(runner)
    assert from_files == TorchInfo(imported.version, imported.cuda, imported.cxx11_abi, (),
                                   distribution=imported.distribution, path=imported.path)
    assert from_files.path == str(env.site_packages(runner) / "torch"), "both find torch where it is"
    assert from_files.distribution == TORCH_VERSION  # what installers compare, from the install record
    assert from_files.cxx11_abi, "torch 2.13's Linux wheels are built with the C++11 ABI"
    assert env.installed(runner)["torch"] == TORCH_VERSION
    assert installed_on_disk(env.path) == _asked(env), "the metadata files say what the interpreter says"
