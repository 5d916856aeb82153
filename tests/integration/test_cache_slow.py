"""The wheel cache and the lock file through real setups (real venvs, real builds)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from gpuenv.cache.wheels import WheelCache
from gpuenv.lock.lockfile import read_lock
from gpuenv.setup.sources import file_sha256
from tests.fakes import gpuenv
from tests.integration.support import (
    TINY_EXT,
    clean_env,
    make_sdist,
    run_in,
    uninstall,
    with_find_links,
    write_recipe,
)


def tiny_recipe(root: Path, seconds: str = "0", packages: str = "") -> Path:
    return write_recipe(root, "tiny", f"""
        [torch]
        version = "2.13.0"

        [[extensions]]
        requirement = "gpuenv-tiny-ext @ {TINY_EXT.as_uri()}"
        import = "gpuenv_tiny_ext"
        env = {{ GPUENV_TEST_BUILD_SECONDS = "{seconds}" }}
        {packages}
    """)


def setup_args(recipe: Path, venv: Path, cache: Path, *extra: str) -> list[str]:
    return ["setup", "-r", str(recipe), "--venv", str(venv), "--torch-index", "config",
            "--cache-dir", str(cache), *extra]


def builds_in(venv: Path) -> int:
    """How often the tiny extension's setup.py really built in this env's setup."""
    log = venv / ".gpuenv" / "logs" / "gpuenv-tiny-ext.log"
    return log.read_text().count("gpuenv-tiny-ext: building") if log.exists() else 0


def test_two_setups_on_one_key_build_it_once(tmp_path: Path) -> None:
    # Long enough that the second setup (its own torch install first) arrives mid-build.
    recipe = tiny_recipe(tmp_path, seconds="60")
    cache = tmp_path / "cache"
    venvs = [tmp_path / "one", tmp_path / "two"]
    procs = [
        subprocess.Popen([sys.executable, "-m", "gpuenv", *setup_args(recipe, v, cache)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env())
        for v in venvs
    ]
    outputs = [p.communicate(timeout=900) for p in procs]
    for proc, (_, err) in zip(procs, outputs):
        assert proc.returncode == 0, err
    assert sum(builds_in(v) for v in venvs) == 1, "one build for one key"
    errs = [err for _, err in outputs]
    assert sum("built and cached" in e for e in errs) == 1
    assert sum("cached after waiting for another process" in e for e in errs) == 1
    assert len(WheelCache(cache).entries()) == 1
    for venv in venvs:
        assert run_in(venv, "import gpuenv_tiny_ext; print(gpuenv_tiny_ext.answer())").strip() == "42"


def test_a_build_killed_midway_leaves_no_entry_and_the_next_setup_builds(tmp_path: Path) -> None:
    recipe = tiny_recipe(tmp_path, seconds="20")
    cache, venv = tmp_path / "cache", tmp_path / "venv"
    proc = subprocess.Popen([sys.executable, "-m", "gpuenv", *setup_args(recipe, venv, cache)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=clean_env(),
                            start_new_session=True)
    deadline = time.monotonic() + 600
    while builds_in(venv) == 0:
        assert proc.poll() is None, "setup ended before its build started"
        assert time.monotonic() < deadline, "the build never started"
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert WheelCache(cache).entries() == [], "a killed build leaves no cache entry"

    done = gpuenv(*setup_args(recipe, venv, cache), env=clean_env())
    assert done.returncode == 0, done.stderr
    assert "built and cached" in done.stderr
    assert len(WheelCache(cache).entries()) == 1
    assert run_in(venv, "import gpuenv_tiny_ext; print(gpuenv_tiny_ext.answer())").strip() == "42"


def test_an_altered_cache_entry_is_refused_rebuilt_and_reported(tmp_path: Path) -> None:
    recipe = tiny_recipe(tmp_path)
    cache = tmp_path / "cache"
    first = gpuenv(*setup_args(recipe, tmp_path / "one", cache), env=clean_env())
    assert first.returncode == 0, first.stderr
    (entry,) = WheelCache(cache).entries()
    data = bytearray(entry.wheel.read_bytes())
    data[len(data) // 2] ^= 0xFF
    entry.wheel.write_bytes(bytes(data))

    second = gpuenv(*setup_args(recipe, tmp_path / "two", cache), env=clean_env())
    assert second.returncode == 0, second.stderr
    assert "refused the cached wheel of gpuenv-tiny-ext" in second.stderr
    assert "built and cached" in second.stderr
    assert builds_in(tmp_path / "two") == 1
    (rebuilt,) = WheelCache(cache).entries()
    assert WheelCache(cache).verify(rebuilt) is None
    assert run_in(tmp_path / "two", "import gpuenv_tiny_ext; print(gpuenv_tiny_ext.answer())").strip() == "42"


def test_an_exact_pin_the_lock_records_comes_from_the_cache_without_fetching_it(tmp_path: Path) -> None:
    # The tiny extension served as an index serves an sdist (find-links), asked for by an exact pin.
    sdist = make_sdist(TINY_EXT, "gpuenv-tiny-ext", "1.0", tmp_path / "links")
    env = with_find_links(clean_env(), sdist.parent)
    recipe = write_recipe(tmp_path, "pinned", """
        [torch]
        version = "2.13.0"

        [[extensions]]
        requirement = "gpuenv-tiny-ext==1.0"
        import = "gpuenv_tiny_ext"
    """)
    cache = tmp_path / "cache"
    first = gpuenv(*setup_args(recipe, tmp_path / "one", cache), env=env)
    assert first.returncode == 0, first.stderr
    assert builds_in(tmp_path / "one") == 1
    (record,) = read_lock(tmp_path / "gpuenv.lock")["pinned"].extensions
    assert record.source == "sha256:" + file_sha256(sdist), "the lock names the sdist it built"

    second = gpuenv(*setup_args(recipe, tmp_path / "two", cache), env=env)
    assert second.returncode == 0, second.stderr
    assert "source sha256 from the lock, not fetched" in second.stderr
    logs = tmp_path / "two" / ".gpuenv" / "logs"
    assert "pip " not in (logs / "gpuenv-tiny-ext.log").read_text(), "no fetch, no build requirements"
    installs = [line for line in (logs / "setup.log").read_text().splitlines()
                if line.startswith("$ ") and "gpuenv_tiny_ext-1.0-" in line]
    assert len(installs) == 1 and "--force-reinstall" not in installs[0], "one install into a fresh env"
    assert builds_in(tmp_path / "two") == 0
    assert run_in(tmp_path / "two", "import gpuenv_tiny_ext; print(gpuenv_tiny_ext.answer())").strip() == "42"
    assert read_lock(tmp_path / "gpuenv.lock")["pinned"].extensions == (record,)

    ext_log = tmp_path / "two" / ".gpuenv" / "logs" / "gpuenv-tiny-ext.log"

    # An altered entry met on that path is refused and said so, then fetched and rebuilt.
    uninstall(tmp_path / "two", "gpuenv-tiny-ext")
    (entry,) = WheelCache(cache).entries()
    entry.wheel.write_bytes(entry.wheel.read_bytes() + b"altered")
    third = gpuenv(*setup_args(recipe, tmp_path / "two", cache), env=env)
    assert third.returncode == 0, third.stderr
    assert "refused the cached wheel of gpuenv-tiny-ext" in third.stderr
    assert "built and cached" in third.stderr and builds_in(tmp_path / "two") == 1
    assert ext_log.read_text().count("pip download") == 1

    # Without the lock the same pin is fetched and hashed, and finds the same entry.
    (tmp_path / "gpuenv.lock").unlink()
    uninstall(tmp_path / "two", "gpuenv-tiny-ext")
    fourth = gpuenv(*setup_args(recipe, tmp_path / "two", cache), env=env)
    assert fourth.returncode == 0, fourth.stderr
    assert f"key {record.cache_key[:12]} matched" in fourth.stderr
    assert "not fetched" not in fourth.stderr
    assert ext_log.read_text().count("pip download") == 2
    assert builds_in(tmp_path / "two") == 1


def test_lock_is_written_locked_reproduces_it_and_a_rerun_is_a_noop(tmp_path: Path) -> None:
    recipe = tiny_recipe(tmp_path, packages='[packages]\nrequirements = ["six"]')
    cache = tmp_path / "cache"
    first = gpuenv(*setup_args(recipe, tmp_path / "one", cache), env=clean_env())
    assert first.returncode == 0, first.stderr
    lock = read_lock(tmp_path / "gpuenv.lock")["tiny"]
    assert lock.abi.torch_version == "2.13.0+cpu" and lock.variant == "cpu"
    assert lock.distributions["six"] and lock.distributions["gpuenv-tiny-ext"] == "1.0"
    (ext,) = lock.extensions
    assert ext.name == "gpuenv-tiny-ext" and ext.cache_key == WheelCache(cache).entries()[0].digest

    planned = gpuenv(*["plan", "-r", str(recipe), "--torch-index", "config", "--cache-dir", str(cache),
                      "--json"], env=clean_env())
    assert planned.returncode == 0, planned.stderr
    (ext_plan,) = json.loads(planned.stdout)["extensions"]
    assert ext_plan["action"] == "cached", ext_plan
    assert "built for torch 2.13.0+cpu" in ext_plan["reason"] and ext.cache_key[:12] in ext_plan["reason"]

    again = gpuenv(*setup_args(recipe, tmp_path / "one", cache), env=clean_env())
    assert again.returncode == 0, again.stderr
    assert "nothing to do" in again.stderr and "[1/" not in again.stderr

    locked = gpuenv(*setup_args(recipe, tmp_path / "two", cache, "--locked"), env=clean_env())
    assert locked.returncode == 0, locked.stderr
    assert "cached: key" in locked.stderr, "the locked wheel comes from the cache"
    installed = run_in(tmp_path / "two", (
        "import importlib.metadata as m, json, re\n"
        "print(json.dumps({re.sub(r'[-_.]+', '-', d.metadata['Name']).lower(): d.version"
        " for d in m.distributions()}))\n"
    ))
    assert json.loads(installed) == dict(lock.distributions), "--locked reproduces every version"


def test_a_failed_build_shows_its_log_and_hint_and_keeps_what_was_done(tmp_path: Path) -> None:
    broken = tmp_path / "broken_ext"
    broken.mkdir()
    (broken / "setup.py").write_text(
        "import sys\n"
        "if 'bdist_wheel' in sys.argv:\n"
        "    print(\"nvcc fatal   : Unsupported gpu architecture 'compute_99'\", flush=True)\n"
        "    sys.exit(1)\n"
        "from setuptools import setup\n"
        "setup(name='broken-ext', version='0.1')\n"
    )
    recipe = tiny_recipe(tmp_path, packages=f'[[extensions]]\nrequirement = "broken-ext @ {broken.as_uri()}"')
    cache, venv = tmp_path / "cache", tmp_path / "venv"
    failed = gpuenv(*setup_args(recipe, venv, cache), env=clean_env())
    assert failed.returncode == 1, failed.stderr
    assert "building broken-ext failed" in failed.stderr
    assert "Unsupported gpu architecture 'compute_99'" in failed.stderr, "the log's last lines are shown"
    assert f"full log: {venv}/.gpuenv/logs/broken-ext.log" in failed.stderr
    assert "hint:" in failed.stderr and "--arch" in failed.stderr
    assert "Traceback" not in failed.stderr
    # The env is as it was before that extension: torch and the tiny extension stay.
    assert run_in(venv, "import torch, gpuenv_tiny_ext; print(gpuenv_tiny_ext.answer())").strip() == "42"

    # Fixed, the next run resumes: what was done is not done again.
    fixed = "from setuptools import setup\nsetup(name='broken-ext', version='0.1')\n"
    (broken / "setup.py").write_text(fixed)
    resumed = gpuenv(*setup_args(recipe, venv, cache), env=clean_env())
    assert resumed.returncode == 0, resumed.stderr
    assert "torch 2.13.0+cpu already installed" in resumed.stderr
    assert "gpuenv-tiny-ext 1.0 already installed" in resumed.stderr
    assert builds_in(venv) == 1
