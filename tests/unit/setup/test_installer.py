"""pip and uv command lines, uv's translation of pip's configuration, and the index preflight."""

from __future__ import annotations

import http.server
import json
import locale
import os
import subprocess
import sys
import tempfile
import threading
import time
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpuenv.env.pipconfig import PipSources, parse_config_list, pip_config, pip_sources
from gpuenv.env.targetenv import TargetEnv
from gpuenv.errors import IndexUnreachableError, InputError, StepError
from gpuenv.setup.installer import (
    InstallOptions,
    PipInstaller,
    UvInstaller,
    choose_installer,
    constraints_file,
    find_uv,
    make_installer,
    preflight,
)
from tests.fakes import FakeRunner

ENV = TargetEnv("/work/env")
PY = "/work/env/bin/python"

# What `pip config list` prints on a machine like this one (section.key='value').
CONFIG_LIST = """\
:env:.default-timeout='180'
:env:.find-links='/opt/wheels'
global.cert='/etc/ssl/certs/ca-certificates.crt'
global.constraint='/etc/xdg/pip/constraints.txt'
global.extra-index-url='file:///opt/pypi/simple file:///opt/pypi-more/simple'
global.find-links='/somewhere/else'
global.index-url='https://index-global.invalid/simple'
install.index-url='https://index-install.invalid/simple'
download.index-url='https://index-download.invalid/simple'
"""


# -- pip ------------------------------------------------------------------------------


def test_pip_command_line() -> None:
    commands = PipInstaller(FakeRunner()).commands(
        ENV,
        ["flash-attn==2.8.3.post2", "einops"],
        InstallOptions(
            index_url="https://download.pytorch.org/whl/cu130",
            extra_index_urls=["file:///mirror/simple"],
            constraints=["torch==2.13.0+cpu"],
            no_deps=True,
            no_build_isolation=True,
            upgrade=True,
            find_links=["/wheels"],
        ),
    )
    assert commands == [[
        PY, "-m", "pip", "install", "--upgrade", "--no-deps", "--no-build-isolation",
        "--index-url", "https://download.pytorch.org/whl/cu130",
        "--extra-index-url", "file:///mirror/simple",
        "--find-links", "/wheels",
        "--constraint", str(constraints_file(["torch==2.13.0+cpu"])),
        "flash-attn==2.8.3.post2", "einops",
    ]]


def test_pip_plain_install_leaves_sources_to_pips_configuration() -> None:
    assert PipInstaller(FakeRunner()).commands(ENV, ["six"]) == [[PY, "-m", "pip", "install", "six"]]


def test_install_writes_the_constraints_file_and_runs_the_commands() -> None:
    runner = FakeRunner()
    installer = PipInstaller(runner)
    options = InstallOptions(constraints=["torch==2.13.0+cpu"], no_deps=True)
    installer.install(ENV, ["flash-attn"], options)
    [call] = runner.calls
    expected = installer.commands(ENV, ["flash-attn"], options)
    assert [call.cmd] == expected
    path = Path(call.cmd[call.cmd.index("--constraint") + 1])
    assert path.read_text() == "torch==2.13.0+cpu\n"


def test_nothing_to_install_runs_nothing() -> None:
    runner = FakeRunner()
    PipInstaller(runner).install(ENV, [])
    assert runner.calls == []


def test_with_runner_sends_commands_elsewhere() -> None:
    first, second = FakeRunner(), FakeRunner()
    installer = PipInstaller(first)
    installer.with_runner(second).install(ENV, ["six"])
    assert first.calls == [] and len(second.calls) == 1


def test_make_installer() -> None:
    assert isinstance(make_installer("pip", FakeRunner()), PipInstaller)
    with pytest.raises(InputError, match="auto, pip or uv"):
        make_installer("conda", FakeRunner())


def test_auto_picks_uv_where_it_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _fake_uv(tmp_path)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python" / "bin" / "python"))
    monkeypatch.setenv("PATH", str(fake.parent))
    installer, note = choose_installer("auto", FakeRunner())
    assert isinstance(installer, UvInstaller) and installer.uv == fake
    assert note is None


def test_auto_falls_back_to_pip_with_a_note(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setitem(sys.modules, "uv", None)  # importing it raises ImportError
    installer, note = choose_installer("auto", FakeRunner())
    assert isinstance(installer, PipInstaller)
    assert note is not None and "uv was not found" in note and "gpuenv[uv]" in note
    assert "\n" not in note
    with pytest.raises(StepError, match="uv was not found"):  # forced, it is an error
        choose_installer("uv", FakeRunner())


def test_each_installer_makes_the_env_its_own_way() -> None:
    pip = PipInstaller(FakeRunner()).venv_command(Path("/work/env"), "/usr/bin/python3")
    assert pip == ["/usr/bin/python3", "-m", "venv", "/work/env"]
    uv = UvInstaller(FakeRunner(), uv="/bin/uv", sources=PipSources(), environ={})
    # The interpreter is named (uv neither searches for one nor downloads one); no sources: nothing
    # is fetched.
    assert uv.venv_command(Path("/work/env"), "/usr/bin/python3") == [
        "/bin/uv", "venv", "--quiet", "--no-python-downloads", "--allow-existing",
        "--python", "/usr/bin/python3", "/work/env"]


def _venv_without_pip(tmp_path: Path) -> TargetEnv:
    env = TargetEnv(tmp_path / "env")
    (env.path / "lib" / "python3.11" / "site-packages").mkdir(parents=True)
    (env.path / "pyvenv.cfg").write_text("home = /usr/bin\n")
    return env


def test_pip_puts_pip_into_an_env_uv_made(tmp_path: Path) -> None:
    env = _venv_without_pip(tmp_path)
    python = str(env.python)
    assert not env.has_pip()
    assert PipInstaller(FakeRunner()).commands(env, ["six"]) == [
        [python, "-m", "ensurepip", "--default-pip"], [python, "-m", "pip", "install", "six"]]
    (env.path / "lib" / "python3.11" / "site-packages" / "pip").mkdir()
    (env.path / "lib" / "python3.11" / "site-packages" / "pip" / "__init__.py").touch()
    assert env.has_pip()
    assert PipInstaller(FakeRunner()).commands(env, ["six"]) == [[python, "-m", "pip", "install", "six"]]


def test_uv_reads_gpuenvs_pip_configuration_when_the_env_has_no_pip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = _venv_without_pip(tmp_path)
    (env.path / "pip.conf").write_text("[global]\nfind-links = /not/read\n")  # no pip there reads it
    (tmp_path / "gpuenv-prefix").mkdir()
    (tmp_path / "gpuenv-prefix" / "pip.conf").write_text("[global]\nfind-links = /gpuenv/wheels\n")
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "gpuenv-prefix"))
    runner = FakeRunner()
    uv = UvInstaller(runner, uv="/bin/uv", environ={"HOME": str(tmp_path / "nohome")})
    uv.commands(env, ["six"])
    assert uv.sources(env).find_links == ("/gpuenv/wheels",) and runner.calls == []


def test_an_install_makes_the_env_ask_again_what_is_installed() -> None:
    answers = iter(['@@gpuenv-json@@{"six": "1.16"}', '@@gpuenv-json@@{"six": "1.17"}'])
    runner = FakeRunner(answer=lambda cmd: next(answers) if "-c" in cmd else "")
    env = TargetEnv("/work/env")
    assert env.installed(runner) == {"six": "1.16"}
    assert env.installed(runner) == {"six": "1.16"}, "asked once"
    PipInstaller(runner).install(env, ["six==1.17"])
    assert env.installed(runner) == {"six": "1.17"}
    assert sum("-c" in c.cmd for c in runner.calls) == 2


def _fake_uv(tmp_path: Path) -> Path:
    fake = tmp_path / "bin" / "uv"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    return fake


# -- uv: pip's configuration made explicit -------------------------------------------------


def test_pip_configuration_is_read_like_pip_install_reads_it() -> None:
    sources = pip_sources(parse_config_list(CONFIG_LIST))
    assert sources == PipSources(
        index_url="https://index-install.invalid/simple",  # [install] beats [global]; [download] is ignored
        extra_index_urls=("file:///opt/pypi/simple", "file:///opt/pypi-more/simple"),
        find_links=("/opt/wheels",),  # the environment beats the files
        constraints=("/etc/xdg/pip/constraints.txt",),
        cert="/etc/ssl/certs/ca-certificates.crt",
    )


def _config_world(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A home, site-wide dirs and a prefix, each with a pip.conf, and the environment naming them."""
    home, xdg, prefix = tmp_path / "home", tmp_path / "xdg", tmp_path / "prefix"
    (xdg / "pip").mkdir(parents=True)
    (xdg / "pip" / "pip.conf").write_text(
        "[global]\nindex-url = https://site.invalid/simple\nextra-index-url =\n  file:///a/simple\n"
        "  file:///b/simple\n[install]\nfind_links = /site/wheels\n")
    (home / ".config" / "pip").mkdir(parents=True)
    (home / ".config" / "pip" / "pip.conf").write_text("[global]\nindex-url = https://user.invalid/simple\n")
    (home / ".pip").mkdir()
    (home / ".pip" / "pip.conf").write_text("[global]\nconstraint = /legacy/c.txt\n")
    prefix.mkdir()
    (prefix / "pip.conf").write_text("[install]\nindex-url = https://prefix.invalid/simple\n"
                                     "[global]\ncert = /prefix/ca.pem\n")
    environ = {"HOME": str(home), "XDG_CONFIG_DIRS": str(xdg), "XDG_CONFIG_HOME": str(home / ".config"),
               "PATH": "/usr/bin:/bin", "PIP_DEFAULT_TIMEOUT": "60", "PIP_FIND_LINKS": "/env/wheels"}
    return prefix, environ


@pytest.mark.skipif(sys.platform != "linux", reason="pip's file locations per platform: these are Linux's")
@pytest.mark.parametrize("variant", ["all files", "PIP_CONFIG_FILE", "PIP_CONFIG_FILE=/dev/null"])
def test_pips_files_are_read_as_pip_config_list_reads_them(tmp_path: Path, variant: str) -> None:
    prefix, environ = _config_world(tmp_path)
    if variant == "PIP_CONFIG_FILE":  # it wins over every file, and the user's files are skipped
        (tmp_path / "named.conf").write_text("[global]\nno-index = yes\n")
        environ["PIP_CONFIG_FILE"] = str(tmp_path / "named.conf")
    elif variant == "PIP_CONFIG_FILE=/dev/null":  # no file at all
        environ["PIP_CONFIG_FILE"] = "/dev/null"
    # pip itself, run from a venv at the prefix (it reads the prefix's pip.conf), is the reference.
    venv.create(prefix, with_pip=False, system_site_packages=True)
    listed = subprocess.run([str(prefix / "bin" / "python"), "-m", "pip", "config", "list"], env=environ,
                            capture_output=True, text=True, check=True).stdout
    assert pip_config(prefix, environ) == parse_config_list(listed)
    sources = pip_sources(pip_config(prefix, environ))
    if variant == "all files":
        assert sources == PipSources(index_url="https://prefix.invalid/simple",
                                     extra_index_urls=("file:///a/simple", "file:///b/simple"),
                                     find_links=("/env/wheels",), constraints=("/legacy/c.txt",),
                                     cert="/prefix/ca.pem")
    elif variant == "PIP_CONFIG_FILE":
        assert sources.no_index and sources.constraints == () and sources.index_url == "https://prefix.invalid/simple"
    else:
        assert sources == PipSources(find_links=("/env/wheels",))


def test_pip_variables_win_over_pips_files(tmp_path: Path) -> None:
    prefix, environ = _config_world(tmp_path)
    sources = pip_sources(pip_config(prefix, {
        **environ,
        "PIP_INDEX_URL": "https://index-env.invalid/simple",
        "PIP_EXTRA_INDEX_URL": "https://extra-a.invalid/simple https://extra-b.invalid/simple",
        "PIP_CONSTRAINT": "/c1.txt /c2.txt",
        "PIP_NO_INDEX": "yes",
        "UNRELATED": "x",
    }))
    assert sources.index_url == "https://index-env.invalid/simple"
    assert sources.extra_index_urls == ("https://extra-a.invalid/simple", "https://extra-b.invalid/simple")
    assert sources.constraints == ("/c1.txt", "/c2.txt")
    assert sources.no_index


def test_a_pip_configuration_file_pip_cannot_parse_is_an_error_with_a_hint(tmp_path: Path) -> None:
    prefix, environ = _config_world(tmp_path)
    (prefix / "pip.conf").write_text("index-url = no section\n")
    with pytest.raises(InputError, match=r"pip\.conf cannot be read") as info:
        pip_config(prefix, environ)
    assert info.value.hint is not None and "pip config list" in info.value.hint


def test_a_pip_configuration_file_in_another_encoding_is_an_error_with_a_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix, environ = _config_world(tmp_path)
    (prefix / "pip.conf").write_bytes(b"[global]\n# caf\xe9\n")
    monkeypatch.setattr(locale, "getpreferredencoding", lambda do_setlocale=True: "UTF-8")
    with pytest.raises(InputError, match=r"pip\.conf cannot be read: not UTF-8 text") as info:
        pip_config(prefix, environ)
    assert info.value.hint is not None and "pip config list" in info.value.hint


@pytest.mark.skipif(sys.platform != "linux", reason="pip's file locations per platform: these are Linux's")
def test_a_pip_configuration_file_pip_cannot_open_is_skipped_as_pip_skips_it() -> None:
    """Read as a user the file's mode shuts out: as root (CI), the reader runs as nobody (setpriv)."""
    with tempfile.TemporaryDirectory() as world:
        Path(world).chmod(0o755)  # the unprivileged reader may enter, but not open pip.conf
        prefix, environ = _config_world(Path(world))
        (prefix / "pip.conf").chmod(0)
        code = ("import json, pathlib, sys; from gpuenv.env.pipconfig import pip_config; "
                "print(json.dumps(pip_config(pathlib.Path(sys.argv[1]), json.loads(sys.argv[2]))))")
        as_user = (["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
                   if os.geteuid() == 0 else [])
        out = subprocess.run([*as_user, sys.executable, "-c", code, str(prefix), json.dumps(environ)],
                             capture_output=True, text=True, timeout=60, check=True).stdout
    read = json.loads(out)
    assert read.get("global.cert") != "/prefix/ca.pem", "the prefix's pip.conf was read"
    assert pip_sources(read).index_url == "https://user.invalid/simple"


def test_uv_gets_pips_sources_explicitly() -> None:
    sources = pip_sources(parse_config_list(CONFIG_LIST))
    uv = UvInstaller(FakeRunner(), uv="/bin/uv", sources=sources, environ={})
    commands = uv.commands(
        ENV, ["torch==2.13.0"], InstallOptions(
            index_url="https://download.pytorch.org/whl/cpu", extra_index_urls=["https://mirror.invalid/simple"],
            constraints=["torch==2.13.0+cpu"], no_deps=True,
        ),
    )
    assert commands == [[
        "/bin/uv", "pip", "install", "--python", PY, "--no-deps",
        "--index-url", "https://download.pytorch.org/whl/cpu",
        "--extra-index-url", "file:///opt/pypi/simple",
        "--extra-index-url", "file:///opt/pypi-more/simple",
        "--extra-index-url", "https://mirror.invalid/simple",
        "--find-links", "/opt/wheels",
        "--constraint", "/etc/xdg/pip/constraints.txt",
        "--constraint", str(constraints_file(["torch==2.13.0+cpu"])),
        "--index-strategy", "unsafe-best-match",
        "torch==2.13.0",
    ]]
    assert uv.environ() == {"SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt"}


def test_uv_with_one_index_needs_no_index_strategy() -> None:
    uv = UvInstaller(FakeRunner(), uv="/bin/uv", sources=PipSources(), environ={"SSL_CERT_FILE": "/x"})
    assert uv.commands(ENV, ["six"]) == [["/bin/uv", "pip", "install", "--python", PY, "six"]]
    assert uv.environ() == {}


def test_uv_reads_pips_configuration_files_without_starting_pip(tmp_path: Path) -> None:
    env = _venv_without_pip(tmp_path)
    (env.path / "lib" / "python3.11" / "site-packages" / "pip").mkdir()
    (env.path / "lib" / "python3.11" / "site-packages" / "pip" / "__init__.py").touch()
    (env.path / "pip.conf").write_text("[global]\nfind-links = /env-prefix/wheels\n")  # its pip reads it
    runner = FakeRunner()
    uv = UvInstaller(runner, uv="/bin/uv", environ={"HOME": str(tmp_path / "nohome"),
                                                     "XDG_CONFIG_DIRS": str(tmp_path / "nodirs")})
    [cmd] = uv.commands(env, ["six"])
    assert runner.calls == [], "no pip started to learn its configuration"
    assert uv.sources(env).find_links == ("/env-prefix/wheels",)
    assert cmd[cmd.index("--find-links") + 1] == "/env-prefix/wheels"


def test_find_uv_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "bin" / "uv"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python" / "bin" / "python"))
    monkeypatch.setenv("PATH", str(fake.parent))
    assert find_uv() == fake


def test_missing_uv_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setitem(sys.modules, "uv", None)  # importing it raises ImportError
    with pytest.raises(StepError, match="uv was not found") as info:
        make_installer("uv", FakeRunner())
    assert info.value.hint is not None and "pip install uv" in info.value.hint


# -- preflight ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 serving whl/cpu/torch/."""
    root = tmp_path_factory.mktemp("index")
    (root / "whl" / "cpu" / "torch").mkdir(parents=True)
    (root / "whl" / "cpu" / "torch" / "index.html").write_text("<html></html>")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(root), **kwargs)  # type: ignore[arg-type]

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/whl/{{variant}}"
    server.shutdown()


def test_preflight_passes_for_an_index_that_answers(local_index: str, tmp_path: Path) -> None:
    preflight([local_index.format(variant="cpu")], project="torch")
    preflight([local_index.format(variant="cpu"), tmp_path.as_uri(), str(tmp_path)])


def test_preflight_names_an_index_without_torch(local_index: str) -> None:
    url = local_index.format(variant="cu130")
    with pytest.raises(IndexUnreachableError, match="no torch/ page") as info:
        preflight([url], project="torch")
    assert info.value.url == url


def test_an_unresolvable_index_fails_within_seconds_with_the_mirror_hint() -> None:
    url = "http://gpuenv-unreachable.invalid/whl/{variant}".format(variant="cu121")
    start = time.monotonic()
    with pytest.raises(IndexUnreachableError) as info:
        preflight([url], project="torch")
    assert time.monotonic() - start < 7
    error = info.value
    assert error.url == url and url in str(error)
    assert "does not resolve" in error.problem
    assert error.hint is not None
    for word in ("--torch-index", "GPUENV_TORCH_INDEX", "{variant}", "--torch-index config"):
        assert word in error.hint


def test_a_refused_connection_fails_fast() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(IndexUnreachableError, match="refused"):
        preflight([f"http://127.0.0.1:{port}/simple"], timeout=2)


def test_a_missing_local_index_fails(tmp_path: Path) -> None:
    with pytest.raises(IndexUnreachableError, match="not a directory"):
        preflight([(tmp_path / "nope").as_uri()])


# -- slow: the real uv ------------------------------------------------------------------------


def test_force_reinstall_is_spelled_as_each_installer_spells_it() -> None:
    # setup reinstalls a rebuilt wheel of the same version: without this it is left alone.
    options = InstallOptions(no_deps=True, force_reinstall=True)
    pip = PipInstaller(FakeRunner()).commands(ENV, ["x.whl"], options)
    assert pip == [[PY, "-m", "pip", "install", "--force-reinstall", "--no-deps", "x.whl"]]
    uv = UvInstaller(FakeRunner(), uv="/bin/uv", sources=PipSources(), environ={})
    (command,) = uv.commands(ENV, ["x.whl"], InstallOptions(force_reinstall=True))
    assert "--reinstall" in command and "--force-reinstall" not in command
