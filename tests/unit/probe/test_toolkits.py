"""Finding CUDA toolkits: the real one on this machine and fake ones made per test."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from gpuenv.plan.hardware import Toolkit
from gpuenv.probe.toolkitroots import STANDARD_LOCATIONS, find_toolkits, is_toolkit_root
from gpuenv.runner import SubprocessRunner

REAL_ROOT = "/usr/local/cuda-13.0"
REAL_WRAPPER = "/usr/local/bin/nvcc"

#: Behaves like nvcc for the two questions find_toolkits asks; uses shell builtins
#: only, so it works with whatever PATH a test gives.
FAKE_NVCC = """#!/bin/sh
here=$(cd "${{0%/*}}" && pwd)
for arg in "$@"; do
  case "$arg" in
    --version)
      echo "nvcc: NVIDIA (R) Cuda compiler driver"
      echo "Copyright (c) 2005-2023 NVIDIA Corporation"
      echo "Cuda compilation tools, release {release}, V{release}.{build}"
      echo "Build cuda_{release}.r{release}/compiler.32688072_0"
      exit 0;;
    --dryrun)
      echo "#\\$ _HERE_=$here"
      echo "#\\$ TOP=$here/.."
      exit 0;;
  esac
done
echo "nvcc fatal   : No input files specified; use option --help for more information" >&2
exit 1
"""


class RecordingRunner:
    """The real runner, remembering each command it ran."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self.inner = SubprocessRunner(env=env)
        self.calls: list[list[str]] = []

    def __call__(
        self, cmd: Sequence[str], cwd: str | None = None, extra_environ: Mapping[str, str] | None = None
    ) -> str:
        self.calls.append(list(cmd))
        return self.inner(cmd, cwd, extra_environ)


def write_script(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def make_toolkit(root: Path, release: str = "12.1", *, nvcc: str | None = None,
                 layout: str = "flat") -> Path:
    """A fake toolkit root: bin/nvcc and cuda_runtime.h (in include/ or targets/*/include/)."""
    write_script(root / "bin" / "nvcc", nvcc if nvcc is not None else FAKE_NVCC.format(release=release,
                                                                                       build="105"))
    include = root / "include" if layout == "flat" else root / "targets" / "x86_64-linux" / "include"
    if layout != "none":
        include.mkdir(parents=True, exist_ok=True)
        (include / "cuda_runtime.h").write_text("/* fake */\n", encoding="utf-8")
    return root


def expected(root: Path, version: str) -> Toolkit:
    real = os.path.realpath(root)
    # FAKE_NVCC says "V<release>.105": the full version is read too.
    return Toolkit(nvcc=os.path.join(real, "bin", "nvcc"), version=version, home=real,
                   release=f"{version}.105")


def find(environ: Mapping[str, str], locations: Sequence[str] = (),
         runner: RecordingRunner | None = None) -> tuple[Toolkit, ...]:
    env = {"PATH": "", **environ}
    return find_toolkits(env, runner or RecordingRunner(env), locations=locations)


# -- the toolkit on this machine ---------------------------------------------------------

#: The toolkit on this machine as the probe finds it ("release 13.0, V13.0.88").
REAL = Toolkit(nvcc=f"{REAL_ROOT}/bin/nvcc", version="13.0", home=REAL_ROOT, release="13.0.88")

needs_real_toolkit = pytest.mark.skipif(not os.path.isfile(f"{REAL_ROOT}/bin/nvcc"),
                                        reason=f"no CUDA toolkit at {REAL_ROOT}")


@needs_real_toolkit
def test_finds_the_real_toolkit_with_its_real_root() -> None:
    toolkits = find_toolkits()
    assert REAL in toolkits
    assert all(tk.root != "/usr/local" for tk in toolkits)
    assert len({tk.root for tk in toolkits}) == len(toolkits)


@needs_real_toolkit
@pytest.mark.skipif(not os.path.isfile(REAL_WRAPPER), reason=f"no wrapper script at {REAL_WRAPPER}")
def test_wrapper_script_on_path_resolves_to_the_real_root() -> None:
    # /usr/local/bin/nvcc is "exec /usr/local/cuda-13.0/bin/nvcc": two levels up is /usr/local.
    assert find({"PATH": "/usr/local/bin:/usr/bin:/bin"}) == (
        REAL,
    )


@needs_real_toolkit
def test_real_nvcc_reports_its_root_on_a_dry_run(tmp_path: Path) -> None:
    # A wrapper that does not name its target must be asked: nvcc --dryrun prints TOP.
    wrapper = write_script(tmp_path / "bin" / "nvcc",
                           f'#!/bin/sh\nr={REAL_ROOT}\nexec "$r/bin/nvcc" "$@"\n')
    runner = RecordingRunner({"PATH": f"{wrapper.parent}:/usr/bin:/bin"})
    toolkits = find({"PATH": f"{wrapper.parent}:/usr/bin:/bin"}, runner=runner)
    assert toolkits == (REAL,)
    assert runner.calls[0][:2] == [str(wrapper), "--dryrun"]


def test_standard_locations() -> None:
    assert STANDARD_LOCATIONS == ("/usr/local/cuda", "/usr/local/cuda-*", "/opt/cuda*")


# -- fake toolkits: where they are found ----------------------------------------------------


@pytest.mark.parametrize("variable", ["CUDA_HOME", "CUDA_PATH"])
def test_found_through_environment_variable(tmp_path: Path, variable: str) -> None:
    root = make_toolkit(tmp_path / "cuda-12.1")
    assert find({variable: str(root)}) == (expected(root, "12.1"),)


def test_found_on_path(tmp_path: Path) -> None:
    root = make_toolkit(tmp_path / "cuda-12.1")
    assert find({"PATH": f"{tmp_path / 'nowhere'}:{root / 'bin'}"}) == (expected(root, "12.1"),)


def test_symlinked_nvcc_on_path(tmp_path: Path) -> None:
    root = make_toolkit(tmp_path / "cuda-12.1")
    (tmp_path / "links").mkdir()
    (tmp_path / "links" / "nvcc").symlink_to(root / "bin" / "nvcc")
    assert find({"PATH": str(tmp_path / "links")}) == (expected(root, "12.1"),)


def test_wrapper_script_naming_its_nvcc(tmp_path: Path) -> None:
    root = make_toolkit(tmp_path / "cuda-12.1")
    wrapper = write_script(tmp_path / "usr" / "bin" / "nvcc", f'#!/bin/sh\nexec {root}/bin/nvcc "$@"\n')
    runner = RecordingRunner()
    assert find({"PATH": str(wrapper.parent)}, runner=runner) == (expected(root, "12.1"),)
    assert runner.calls == [[str(root / "bin" / "nvcc"), "--version"]]  # read, not run


def test_wrapper_script_asked_for_its_root(tmp_path: Path) -> None:
    root = make_toolkit(tmp_path / "cuda-12.1")
    (tmp_path / "where").write_text(str(root), encoding="utf-8")
    wrapper = write_script(tmp_path / "usr" / "bin" / "nvcc",
                           f'#!/bin/sh\nIFS= read -r r < {tmp_path}/where\nexec "$r/bin/nvcc" "$@"\n')
    runner = RecordingRunner()
    assert find({"PATH": str(wrapper.parent)}, runner=runner) == (expected(root, "12.1"),)
    assert [call[1] for call in runner.calls] == ["--dryrun", "--version"]


def test_unresolvable_wrapper_is_dropped(tmp_path: Path) -> None:
    wrapper = write_script(tmp_path / "usr" / "bin" / "nvcc", "#!/bin/sh\necho 'no idea'\n")
    assert find({"PATH": str(wrapper.parent)}) == ()


def test_headers_under_targets(tmp_path: Path) -> None:
    root = make_toolkit(tmp_path / "cuda-12.4", "12.4", layout="targets")
    assert is_toolkit_root(str(root))
    assert find({"CUDA_HOME": str(root)}) == (expected(root, "12.4"),)


def test_standard_location_globs(tmp_path: Path) -> None:
    old = make_toolkit(tmp_path / "cuda-11.8", "11.8")
    new = make_toolkit(tmp_path / "cuda-12.8", "12.8")
    assert find({}, locations=[str(tmp_path / "cuda-*")]) == (expected(new, "12.8"), expected(old, "11.8"))


# -- dedupe, order, robustness -----------------------------------------------------------------


def test_one_toolkit_however_many_ways_it_is_found(tmp_path: Path) -> None:
    root = make_toolkit(tmp_path / "cuda-12.1")
    (tmp_path / "cuda").symlink_to(root)
    environ = {"CUDA_HOME": str(tmp_path / "cuda"), "CUDA_PATH": str(root),
               "PATH": f"{root / 'bin'}:{tmp_path / 'cuda' / 'bin'}"}
    runner = RecordingRunner()
    toolkits = find(environ, locations=[str(tmp_path / "cuda"), str(tmp_path / "cuda-*")], runner=runner)
    assert toolkits == (expected(root, "12.1"),)
    assert runner.calls == [[str(root / "bin" / "nvcc"), "--version"]]


def test_newest_first_and_candidate_order_within_a_release(tmp_path: Path) -> None:
    a = make_toolkit(tmp_path / "a", "12.1")
    b = make_toolkit(tmp_path / "b", "12.10")
    c = make_toolkit(tmp_path / "c", "12.1")
    d = make_toolkit(tmp_path / "d", "12.9")
    environ = {"CUDA_HOME": str(c), "PATH": f"{a / 'bin'}"}
    toolkits = find(environ, locations=[str(d), str(b)])
    assert toolkits == (expected(b, "12.10"), expected(d, "12.9"), expected(c, "12.1"), expected(a, "12.1"))


def test_broken_candidates_are_skipped(tmp_path: Path) -> None:
    good = make_toolkit(tmp_path / "good", "12.1")
    failing = make_toolkit(tmp_path / "failing", nvcc="#!/bin/sh\necho 'cannot run' >&2\nexit 1\n")
    mute = make_toolkit(tmp_path / "mute", nvcc="#!/bin/sh\necho 'nvcc, but which?'\n")
    headless = make_toolkit(tmp_path / "headless", layout="none")
    not_executable = make_toolkit(tmp_path / "not-executable")
    (not_executable / "bin" / "nvcc").chmod(0o644)
    not_a_program = make_toolkit(tmp_path / "not-a-program", nvcc="\x7fELF garbage")
    environ = {"CUDA_HOME": str(tmp_path / "missing"), "CUDA_PATH": str(tmp_path / "good" / "bin"),
               "PATH": f"{failing / 'bin'}:{tmp_path / 'missing' / 'bin'}:{mute / 'bin'}"}
    locations = [str(p) for p in (headless, not_executable, not_a_program, good)]
    assert find(environ, locations=locations) == (expected(good, "12.1"),)


def test_no_toolkit_anywhere(tmp_path: Path) -> None:
    assert find({"PATH": str(tmp_path)}, locations=[str(tmp_path / "cuda*")]) == ()


def test_a_hung_nvcc_is_stopped_at_the_query_timeout_and_said_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("GPUENV_QUERY_TIMEOUT", "0.5")
    good = make_toolkit(tmp_path / "good", "12.1")
    hung = make_toolkit(tmp_path / "hung", nvcc="#!/bin/sh\n/bin/sleep 300 &\n/bin/sleep 300\n")
    with caplog.at_level(logging.WARNING, logger="gpuenv"):
        found = find_toolkits({"PATH": ""}, locations=[str(hung), str(good)])
    assert found == (expected(good, "12.1"),)
    assert f"skipped the toolkit at {os.path.realpath(hung)}" in caplog.text
    assert "did not answer within 0.5 s" in caplog.text
