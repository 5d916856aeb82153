"""Setups through a shared cache on a real pypiserver, and through a publisher's page of prebuilt wheels.

- A "second machine": the session's cache (torch-scatter and flash-attn built by the CPU setup) is
  pushed with `gpuenv cache push`; a setup with an empty cache and --cache-from builds nothing and
  installs the very files pushed.
- A server that is down, and a wheel on the server that was cut short: warned about, refused by
  name, built, and put right by --push.
- A find-links page standing in for a publisher (PyG's pages): candidates with the wrong C++11 ABI,
  an unresolved libtorch symbol and a failing import are refused, each for its reason; the good
  one is installed without building.
"""

from __future__ import annotations

import csv
import functools
import http.server
import io
import json
import shutil
import subprocess
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpuenv.cache.files import sha256_file
from gpuenv.cache.key import CacheKey
from gpuenv.cache.remotekey import KEY_FILE, digest_in_name
from gpuenv.cache.shared import SharedCache, cache_source
from gpuenv.cache.wheelfile import record_hash
from gpuenv.cache.wheels import WheelCache
from gpuenv.lock.lockfile import read_lock
from tests.fakes import gpuenv
from tests.integration.pypiserver import Server, free_port, pypiserver
from tests.integration.support import TINY_EXT, clean_env, run_in, write_recipe


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with pypiserver(tmp_path / "packages") as running:
        yield running


def setup(recipe: Path, venv: Path, cache: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return gpuenv(*["setup", "-r", str(recipe), "--venv", str(venv), "--torch-index", "config",
                   "--cache-dir", str(cache), *extra], env=clean_env())


def test_a_second_machine_installs_the_pushed_wheels_without_building(
    cpu_setup: tuple[Path, subprocess.CompletedProcess[str]], session_cache: Path, server: Server,
    tmp_path: Path,
) -> None:
    venv, _ = cpu_setup
    pushed = gpuenv(*["cache", "push", server.simple, "--cache-dir", str(session_cache)], env=clean_env())
    assert pushed.returncode == 0, pushed.stderr
    # The session's cache holds what every slow test before this one built (local trees among them,
    # whose wheels name another project than their key): each is pushed, and listed where it is filed.
    assert pushed.stdout.count("pushed ") == len(WheelCache(session_cache).entries()) >= 2, pushed.stdout
    on_server = {digest_in_name(p.name): p for p in server.packages.glob("*.whl")}

    recipe = Path(str(venv).replace("/venv", "")) / "graph.toml"
    second = setup(recipe, tmp_path / "venv", tmp_path / "empty-cache", "--cache-from", server.simple)
    assert second.returncode == 0, second.stderr
    assert "built and cached" not in second.stderr and "building" not in second.stderr
    assert second.stderr.count("from the shared cache " + server.simple) == 2, second.stderr

    locked = read_lock(recipe.with_name("gpuenv.lock"))["graph"]
    for ext in locked.extensions:
        assert sha256_file(on_server[ext.cache_key]) == ext.wheel_sha256, "installed: the wheel pushed"
    info = json.loads(run_in(tmp_path / "venv", (
        "import importlib.metadata as m, json; d = m.distribution('torch-scatter'); "
        f"print(d.read_text('{KEY_FILE}'))")))
    assert CacheKey.from_json(info["key"]).abi.torch_version == "2.13.0+cpu"
    answer = run_in(tmp_path / "venv", "import torch, torch_scatter; print(torch_scatter.scatter_sum("
                                       "torch.tensor([1., 2.]), torch.tensor([0, 0])).tolist())")
    assert answer.strip() == "[3.0]"


def test_a_down_server_and_a_damaged_wheel_cost_a_warning_and_a_build_and_push_puts_it_right(
    server: Server, tmp_path: Path
) -> None:
    recipe = write_recipe(tmp_path, "tiny", f"""
        [torch]
        version = "2.13.0"

        [[extensions]]
        requirement = "gpuenv-tiny-ext @ {TINY_EXT.as_uri()}"
        import = "gpuenv_tiny_ext"
    """)
    down = f"http://127.0.0.1:{free_port()}/simple/"
    first = setup(recipe, tmp_path / "one", tmp_path / "cache-one", "--cache-from", down,
                  "--cache-from", server.simple, "--push")
    assert first.returncode == 0, first.stderr
    assert first.stderr.count(f"shared cache {down} cannot be reached") == 1, first.stderr
    assert "built and cached" in first.stderr and "pushed gpuenv_tiny_ext-1.0-1gpuenv" in first.stderr
    assert "could not push gpuenv_tiny_ext-1.0-cp" in first.stderr, "the down server: named, not pushed to"
    (wheel,) = server.packages.glob("*.whl")
    wheel.write_bytes(wheel.read_bytes()[:-64])  # an upload cut off, as pypiserver keeps it

    second = setup(recipe, tmp_path / "two", tmp_path / "cache-two", "--cache-from", server.simple, "--push")
    assert second.returncode == 0, second.stderr
    assert f"refused {wheel.name} from {server.simple}: " in second.stderr
    assert "built and cached" in second.stderr
    assert f"replaced a damaged {wheel.name} on {server.simple}" in second.stderr
    assert SharedCache([cache_source(server.simple)], tmp_path / "check").fetch(
        WheelCache(tmp_path / "cache-two").entries()[0].key) is not None
    assert run_in(tmp_path / "two", "import gpuenv_tiny_ext; print(gpuenv_tiny_ext.answer())").strip() == "42"


# -- a publisher's page of prebuilt wheels ---------------------------------------------------------

WRONG_ABI = """
#include <string>
namespace c10 { namespace detail {
[[noreturn]] void torchCheckFail(const char*, const char*, unsigned int, const std::string&);
} }
extern "C" void fail() { c10::detail::torchCheckFail("f", "x.cpp", 1, std::string("no")); }
"""
UNRESOLVED = """
namespace c10 { int this_is_not_in_libtorch(); }
extern "C" int call() { return c10::this_is_not_in_libtorch(); }
"""


def repack(wheel: Path, out: Path, version: str, extra: dict[str, bytes]) -> Path:
    """``wheel`` as its publisher would name it (``version`` with a local label), with ``extra`` files."""
    with zipfile.ZipFile(wheel) as archive:
        files = {i.filename: archive.read(i) for i in archive.infolist() if not i.is_dir()}
    old_info = next(n.split("/")[0] for n in files if n.endswith(".dist-info/RECORD"))
    new_info = f"torch_scatter-{version}.dist-info"
    moved = {n.replace(old_info, new_info, 1) if n.startswith(old_info + "/") else n: data
             for n, data in files.items() if n != f"{old_info}/RECORD"}
    moved[f"{new_info}/METADATA"] = moved[f"{new_info}/METADATA"].replace(
        b"\nVersion: 2.1.2\n", f"\nVersion: {version}\n".encode())
    moved.update(extra)
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    for name, data in moved.items():
        writer.writerow([name, record_hash(data), len(data)])
    writer.writerow([f"{new_info}/RECORD", "", ""])
    target = out / wheel.name.replace("2.1.2-", f"{version}-", 1)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in moved.items():
            archive.writestr(name, data)
        archive.writestr(f"{new_info}/RECORD", record.getvalue())
    return target


@pytest.fixture
def publisher(session_cache: Path, cpu_setup: object, tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """An HTTP server on 127.0.0.1 with a PyG-like page for torch 2.13 (CPU): bad candidates first."""
    if shutil.which("g++") is None:
        pytest.skip("needs g++ for the bad candidates' libraries")
    built = next(e.wheel for e in WheelCache(session_cache).entries() if e.key.name == "torch-scatter")
    for name, code, flags in (("wrong_abi", WRONG_ABI, ["-D_GLIBCXX_USE_CXX11_ABI=0"]),
                              ("unresolved", UNRESOLVED, [])):
        (tmp_path / f"{name}.cpp").write_text(code)
        subprocess.run(["g++", "-shared", "-fPIC", *flags, f"{name}.cpp", "-o", f"{name}.so"], cwd=tmp_path,
                       check=True)
    page = tmp_path / "whl"
    page.mkdir()
    label = "2.1.2+pt213cpu"
    wheels = {  # each repacked into its own folder first: they share one file name
        "wrong ABI": {"torch_scatter/_probe.so": (tmp_path / "wrong_abi.so").read_bytes()},
        "unresolved": {"torch_scatter/_probe.so": (tmp_path / "unresolved.so").read_bytes()},
        "import": {"torch_scatter/__init__.py": b"raise ImportError('broken on purpose')\n"},
        "good": {},
    }
    names = {}
    links = []
    for number, (what, extra) in enumerate(wheels.items()):
        folder = page / str(number)
        folder.mkdir()
        candidate = repack(built, folder, label, extra)
        names[what] = f"{number}/{candidate.name}"
        links.append(f'<a href="{number}/{candidate.name.replace("+", "%2B")}">{candidate.name}</a><br>')
    (page / "torch-2.13.0+cpu.html").write_text("<html><body>\n" + "\n".join(links) + "\n</body></html>")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/whl/", names
    httpd.shutdown()


def test_a_publishers_wheel_is_used_only_after_the_audit_and_each_refusal_says_why(
    publisher: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    url, names = publisher
    page = url + "torch-{torch_release}.0+{variant}.html"
    recipe = write_recipe(tmp_path / "r", "pyg", f"""
        [torch]
        version = "2.13.0"

        [[extensions]]
        requirement = "torch-scatter==2.1.2"
        prebuilt = [{{ url = "{page}", local = "pt{{torch_nodot}}{{variant}}" }}]
    """)
    done = setup(recipe, tmp_path / "venv", tmp_path / "cache")
    assert done.returncode == 0, done.stderr
    err = done.stderr
    base = names["good"].split("/")[1]
    assert f"refused prebuilt {base}: 1 of its" in err and "_ZN3c106detail14torchCheckFailEPKcS2_jRKSs" in err
    assert "_ZN3c1023this_is_not_in_libtorchEv" in err
    assert "import torch_scatter fails: ImportError: broken on purpose" in err
    assert f"prebuilt, from {url}{names['good'].replace('+', '%2B')}; audited:" in err
    assert "libtorch symbols resolve in the torch here" in err
    assert "built and cached" not in err
    assert run_in(tmp_path / "venv", "import importlib.metadata as m; print(m.version('torch-scatter'))"
                  ).strip() == "2.1.2+pt213cpu"

    again = setup(recipe, tmp_path / "venv2", tmp_path / "cache")
    assert again.returncode == 0, again.stderr
    assert "cached: key" in again.stderr and "refused prebuilt" not in again.stderr, \
        "the audited wheel is kept in the local cache: no second download or audit"
