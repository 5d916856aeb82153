"""`gpuenv setup` for real: real venvs, real pip, real sdists, real nvcc (minutes)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from gpuenv.probe.binaries import find_cuobjdump, list_elf, read_cuda_code
from tests.fakes import gpuenv
from tests.integration.support import REPO, TINY_EXT, clean_env, env_python, made_by_uv, run_in, write_recipe


def test_torch_scatter_from_its_sdist_gives_the_right_numbers(cpu_setup: tuple[Path, object]) -> None:
    venv, _ = cpu_setup
    out = run_in(venv, (
        "import torch, torch_scatter\n"
        "src = torch.tensor([1., 2., 3., 4., 5.])\n"
        "index = torch.tensor([0, 1, 0, 1, 2])\n"
        "print(torch_scatter.scatter_sum(src, index, dim=0).tolist(), torch.__version__)\n"
    ))
    assert out.split() [0:3] == ["[4.0,", "6.0,", "5.0]"], out
    assert "2.13.0" in out


def test_setup_reports_each_step(cpu_setup: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    _, done = cpu_setup
    assert "[1/" in done.stderr and "extension torch-scatter" in done.stderr
    assert "ready:" in done.stdout


def test_uv_is_the_default_installer_where_it_is_installed(
    cpu_setup: tuple[Path, subprocess.CompletedProcess[str]]
) -> None:
    venv, done = cpu_setup  # the test extra installs uv next to the tests' interpreter
    assert f"created {venv} with uv" in done.stderr
    assert made_by_uv(venv)
    log = (venv / ".gpuenv" / "logs" / "setup.log").read_text()
    installs = [line for line in log.splitlines() if line.startswith("$ ") and " install " in line]
    assert installs and all(" pip install --python " in line for line in installs), installs
    # torch is imported once, by verify (the script that defines torch_facts() imports it): the
    # base step reads torch's facts from its files.
    assert log.count("def torch_facts():") == 1


def test_the_pip_installer_still_sets_up_an_env(
    cpu_setup: tuple[Path, object], session_cache: Path, tmp_path: Path
) -> None:
    venv, _ = cpu_setup
    # A copy of the recipe and its lock: this env's lock entry must not replace the session env's.
    for name in ("graph.toml", "gpuenv.lock"):
        shutil.copy(venv.parent / name, tmp_path / name)
    fresh = tmp_path / "by-pip"
    done = gpuenv(*["setup", "-r", str(tmp_path / "graph.toml"), "--venv", str(fresh), "--torch-index",
                   "config", "--cache-dir", str(session_cache), "--installer", "pip"], env=clean_env())
    assert done.returncode == 0, done.stderr
    assert f"created {fresh} with pip" in done.stderr and not made_by_uv(fresh)
    assert "cached: key" in done.stderr and "built and cached" not in done.stderr
    log = (fresh / ".gpuenv" / "logs" / "setup.log").read_text()
    assert f"$ {fresh}/bin/python -m pip install" in log and " pip install --python " not in log
    out = run_in(fresh, "import torch, torch_scatter, pip\n"
                        "src, index = torch.tensor([1., 2., 3.]), torch.tensor([0, 1, 0])\n"
                        "print(torch_scatter.scatter_sum(src, index))\n")
    assert "tensor([4., 2.])" in out


def test_flash_attn_fails_under_isolation_and_builds_through_gpuenv(
    cpu_setup: tuple[Path, object], tmp_path: Path
) -> None:
    venv, _ = cpu_setup
    # The seed failure: the same sdist, with torch in the venv, under build isolation.
    isolated = subprocess.run(
        [str(env_python(venv)), "-m", "pip", "wheel", "--no-deps", "--use-pep517", "-w", str(tmp_path),
         "flash-attn==2.8.3.post2"],
        capture_output=True, text=True, check=False,
    )
    assert isolated.returncode != 0
    assert ("No module named 'torch'" in isolated.stdout + isolated.stderr
            or "No module named 'packaging'" in isolated.stdout + isolated.stderr)
    # Through gpuenv (the session fixture) it was built without isolation and installed.
    # With its CUDA build skipped it has no compiled module, so check the distribution.
    version = run_in(venv, "import importlib.metadata as m; print(m.version('flash-attn'))")
    assert version.strip() == "2.8.3.post2"


def test_setup_again_on_a_matching_env_does_nothing(
    cpu_setup: tuple[Path, object], session_cache: Path
) -> None:
    venv, _ = cpu_setup
    recipe = next(venv.parent.glob("*.toml"))
    done = gpuenv(*["setup", "-r", str(recipe), "--venv", str(venv), "--torch-index", "config",
                   "--cache-dir", str(session_cache)], env=clean_env())
    assert done.returncode == 0, done.stderr
    assert "nothing to do" in done.stderr
    assert "[1/" not in done.stderr, "no step may run: the fingerprint matched"


def test_setup_into_a_fresh_env_takes_the_cached_wheels(
    cpu_setup: tuple[Path, object], session_cache: Path, tmp_path: Path
) -> None:
    venv, _ = cpu_setup
    recipe = next(venv.parent.glob("*.toml"))
    fresh = tmp_path / "fresh"
    done = gpuenv(*["setup", "-r", str(recipe), "--venv", str(fresh), "--torch-index", "config",
                   "--cache-dir", str(session_cache)], env=clean_env())
    assert done.returncode == 0, done.stderr
    assert "torch_scatter-2.1.2" in done.stderr and "cached: key" in done.stderr
    assert "built and cached" not in done.stderr, "no build: both wheels come from the cache"
    out = run_in(fresh, "import torch, torch_scatter\n"
                        "src, index = torch.tensor([1., 5., 3.]), torch.tensor([0, 0, 1])\n"
                        "print(torch_scatter.scatter_max(src, index)[0])")
    assert "tensor([5., 3.])" in out


def test_setup_reads_what_torch_really_is_and_records_it(session_cache: Path, tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path, "tiny", f"""
        [torch]
        version = "2.13.0"

        [[extensions]]
        requirement = "{TINY_EXT}"
    """)
    venv = tmp_path / "venv"
    args = ["setup", "-r", str(recipe), "--venv", str(venv), "--torch-index", "config",
            "--cache-dir", str(session_cache), "--work-dir", str(tmp_path / "work")]
    done = gpuenv(*args, env=clean_env())
    assert done.returncode == 0, done.stderr
    # Its logs elsewhere, the env it made still carries gpuenv's mark: a rerun does not adopt it.
    assert not (venv / ".gpuenv").exists() and (venv / "gpuenv-state.json").is_file()
    assert "adopting" not in done.stderr
    # Read from the installed torch's own header (torch/all.h), not from gpuenv's data; the data agrees.
    assert "observed: headers need C++17" in done.stderr
    assert "warning: torch.toml" not in done.stderr
    lock = (tmp_path / "gpuenv.lock").read_text()
    assert "cxx-standard = 17" in lock and "given = true" not in lock
    # The plan made again for what landed does not change what a rerun compares, and the env is not
    # taken for one gpuenv did not create (its torch would then be given, and the plan another).
    again = gpuenv(*args, env=clean_env())
    assert again.returncode == 0 and "nothing to do" in again.stderr, again.stderr


def _extension_sos(venv: Path) -> list[Path]:
    site = next((venv / "lib").glob("python3*/site-packages"))
    return sorted(site.glob("gpuenv_test_cuda_ext*/**/*.so")) + sorted(site.glob("gpuenv_test_cuda_ext*.so"))


def test_cuda_extension_is_built_for_exactly_the_requested_archs(
    cuda_recipe: Path, cuda_venv: Path, session_cache: Path
) -> None:
    cache = ["--cache-dir", str(session_cache)]
    done = gpuenv(*["setup", "-r", str(cuda_recipe), "--venv", str(cuda_venv), "--gpu", "H100", *cache],
                  env=clean_env())
    assert done.returncode == 0, done.stdout + done.stderr
    assert run_in(cuda_venv, "import torch; print(torch.version.cuda)").strip() == "13.0"
    # What the wheel carries, read from its libtorch_cuda.so (no import), agrees with torch.toml.
    assert "observed: archs 7.5, 8.0, 8.6, 9.0, 10.0, 12.0 (from " in done.stderr
    assert "libtorch_cuda.so), headers need C++20" in done.stderr
    assert "warning: torch.toml" not in done.stderr and "note: torch.cuda.get_arch_list()" not in done.stderr
    sos = _extension_sos(cuda_venv)
    assert sos, "the extension's compiled module is installed"
    site = next((cuda_venv / "lib").glob("python3*/site-packages"))
    cuobjdump = find_cuobjdump(extra_dirs=[site])
    assert cuobjdump is not None, "triton in the CUDA torch env ships cuobjdump"
    assert {str(s) for so in sos for s in list_elf(so, cuobjdump)} == {"sm_90"}
    assert read_cuda_code(sos[0]).sass == frozenset({"sm_90"})

    again = gpuenv(*["setup", "-r", str(cuda_recipe), "--venv", str(cuda_venv), "--arch", "8.0,9.0", *cache],
                   env=clean_env())
    assert again.returncode == 0, again.stdout + again.stderr
    assert "built and cached" in again.stderr, "new archs, new key: a rebuild"
    sos = _extension_sos(cuda_venv)
    assert {str(s) for so in sos for s in list_elf(so, cuobjdump)} == {"sm_80", "sm_90"}


def test_nox_session_and_invoke_task_run_the_same_code_path(tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path, "cpu", """
        [torch]
        version = "2.13.0"

        [[extensions]]
        requirement = "torch-scatter==2.1.2"
    """)
    venv = tmp_path / "venv"
    args = ["-r", str(recipe), "--venv", str(venv), "--dry-run"]
    direct = gpuenv(*["setup", *args], env=clean_env())
    assert direct.returncode == 0, direct.stderr
    expected = [portable(line, venv) for line in direct.stdout.splitlines() if line.strip()]

    via_nox = subprocess.run(
        [sys.executable, "-m", "nox", "-f", str(REPO / "noxfile.py"), "--envdir", str(tmp_path / "nox"),
         "-s", "gpu-env", "--", *args],
        capture_output=True, text=True, cwd=REPO, env=clean_env(), check=False,
    )
    assert via_nox.returncode == 0, via_nox.stdout + via_nox.stderr
    # The session has its own interpreter and uv (its gpuenv installs with uv too).
    printed = [portable(line, venv) for line in (via_nox.stdout + via_nox.stderr).splitlines()]
    for line in expected:
        assert line in printed

    via_invoke = subprocess.run(
        [sys.executable, "-m", "invoke", "setup", "--recipe", str(recipe), "--venv", str(tmp_path / "venv"),
         "--dry-run"],
        capture_output=True, text=True, cwd=REPO, env=clean_env(), check=False,
    )
    assert via_invoke.returncode == 0, via_invoke.stdout + via_invoke.stderr
    assert [portable(line, venv) for line in via_invoke.stdout.splitlines() if line.strip()] == expected


def portable(line: str, venv: Path) -> str:
    """A dry-run line without the paths of the interpreter gpuenv runs in and of its uv."""
    line = re.sub(r"\S+/bin/uv(?= )", "uv", line)
    return re.sub(r"--python (\S+)",
                  lambda m: m.group(0) if m.group(1).startswith(str(venv)) else "--python PYTHON", line)
