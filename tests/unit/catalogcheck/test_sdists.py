"""The downloader and the command against a PEP 691 index served from a temp dir on 127.0.0.1
(no other network), with a small sdist made here."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import socket
import tarfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gpuenv.catalogcheck.__main__ import main
from gpuenv.catalogcheck.sdists import (
    build_files_of_archive,
    build_files_of_tree,
    download,
    index_urls,
    read_project,
)
from gpuenv.env.pipconfig import PipSources
from gpuenv.errors import IndexUnreachableError, InputError, StepError

SETUP = """\
import os
from setuptools import setup
from torch.utils.cpp_extension import BuildExtension, CUDAExtension
from build_tools.helper import nvcc_flags

FORCE_BUILD = os.getenv("PKG_FORCE_BUILD", "FALSE") == "TRUE"
ext = CUDAExtension("pkg._C", ["csrc/a.cu"], extra_compile_args={"nvcc": nvcc_flags()})
setup(name="pkg", ext_modules=[ext], cmdclass={"build_ext": BuildExtension})
"""
HELPER = 'def nvcc_flags():\n    return ["-O3"]\n'


def make_sdist(path: Path, *, evil: bool = False) -> bytes:
    members = {
        "pkg-1.0/setup.py": SETUP,
        "pkg-1.0/pyproject.toml": '[build-system]\nrequires = ["setuptools"]\n',
        "pkg-1.0/build_tools/__init__.py": "",
        "pkg-1.0/build_tools/helper.py": HELPER,
        "pkg-1.0/csrc/a.cu": "__global__ void k() {}\n",
    }
    if evil:
        members["../escaped.py"] = "x = 1\n"
        members["/absolute.py"] = "x = 1\n"
    with tarfile.open(path, "w:gz") as tar:
        for name, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("pkg-1.0/setup.cfg")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    return path.read_bytes()


class Index(http.server.SimpleHTTPRequestHandler):
    """Serves the temp dir; a project's page is its index.json (PEP 691) or index.html."""

    def do_GET(self) -> None:
        local = Path(self.translate_path(self.path))
        if self.path.endswith("/") and (local / "index.json").is_file():
            body = (local / "index.json").read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.pypi.simple.v1+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def index(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """An index at http://127.0.0.1:PORT/simple; call it to publish pkg-1.0 (JSON or HTML)."""
    root = tmp_path / "www"
    (root / "simple").mkdir(parents=True)

    def handler(*args: object, **kwargs: object) -> Index:
        return Index(*args, directory=str(root), **kwargs)  # type: ignore[arg-type]

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}/simple"

    def publish(*, html: bool = False, sha256: str | None = None, evil: bool = False) -> str:
        (root / "files").mkdir(exist_ok=True)
        data = make_sdist(root / "files" / "pkg-1.0.tar.gz", evil=evil)
        digest = sha256 or hashlib.sha256(data).hexdigest()
        page = root / "simple" / "pkg"
        page.mkdir(exist_ok=True)
        if html:
            (page / "index.html").write_text(
                f'<a href="../../files/pkg-1.0.tar.gz#sha256={digest}">pkg-1.0.tar.gz</a>\n'
                '<a href="../../files/pkg-0.9.tar.gz" data-yanked="">pkg-0.9.tar.gz</a>\n')
        else:
            (page / "index.json").write_text(json.dumps({
                "meta": {"api-version": "1.1"}, "name": "pkg", "versions": ["0.9", "1.0"],
                "files": [
                    {"filename": "pkg-1.0.tar.gz", "url": "../../files/pkg-1.0.tar.gz",
                     "hashes": {"sha256": digest}},
                    {"filename": "pkg-1.0-py3-none-any.whl", "url": "../../files/x.whl", "hashes": {}},
                    {"filename": "pkg-0.9.tar.gz", "url": "../../files/pkg-0.9.tar.gz", "hashes": {},
                     "yanked": "broken"},
                ]}))
        return base

    yield publish
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("html", [False, True])
def test_the_sdists_of_a_project_come_from_the_index_page(index: Callable[..., str], html: bool) -> None:
    base = index(html=html)
    project = read_project("PKG", [base], timeout=5)
    assert list(project.sdists) == ["1.0"]  # not the wheel, not the yanked 0.9
    assert project.sdists["1.0"].url == base.removesuffix("/simple") + "/files/pkg-1.0.tar.gz"


def test_a_project_an_index_lacks_is_said_so(index: Callable[..., str]) -> None:
    base = index()
    project = read_project("other", [base], timeout=5)
    assert project.sdists == {} and project.asked == [f"{base}: no such project"]


def test_an_index_that_does_not_answer_fails_within_its_timeout() -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    with pytest.raises(IndexUnreachableError) as caught:
        read_project("pkg", [f"http://127.0.0.1:{port}/simple"], timeout=2)
    assert caught.value.url == f"http://127.0.0.1:{port}/simple"


def test_the_sdist_is_checked_against_the_indexs_sha256(index: Callable[..., str], tmp_path: Path) -> None:
    base = index(sha256="0" * 64)
    file = read_project("pkg", [base], timeout=5).sdists["1.0"]
    with pytest.raises(StepError, match="sha256"):
        download(file, tmp_path / "cache", timeout=5)
    assert not (tmp_path / "cache" / "sdists" / "pkg-1.0.tar.gz").exists()


def test_only_the_build_files_are_read_out_and_nothing_escapes(
        index: Callable[..., str], tmp_path: Path) -> None:
    base = index(evil=True)
    file = read_project("pkg", [base], timeout=5).sdists["1.0"]
    archive = download(file, tmp_path / "cache", timeout=5)
    again = download(file, tmp_path / "cache", timeout=5)  # kept: no second download
    assert again == archive
    out = tmp_path / "cache" / "build-files" / "pkg-1.0"
    files = build_files_of_archive(archive, out)
    assert sorted(files) == ["build_tools/helper.py", "pyproject.toml", "setup.py"]
    assert files["build_tools/helper.py"] == HELPER
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == sorted(files)
    assert not list(tmp_path.rglob("escaped.py")) and not list(tmp_path.rglob("absolute.py"))


def test_a_local_tree_gives_the_same_build_files(tmp_path: Path) -> None:
    tree = tmp_path / "pkg"
    (tree / "build_tools").mkdir(parents=True)
    (tree / "setup.py").write_text(SETUP)
    (tree / "build_tools" / "helper.py").write_text(HELPER)
    (tree / "build_tools" / "__init__.py").write_text("")
    assert sorted(build_files_of_tree(tree)) == ["build_tools/helper.py", "setup.py"]
    with pytest.raises(InputError, match="not a package's source tree"):
        build_files_of_tree(tmp_path / "pkg" / "build_tools")


def test_the_indexes_are_pips_index_url_then_its_extra_ones() -> None:
    sources = PipSources(index_url="https://mirror.example/simple", extra_index_urls=("file:///srv/simple",))
    assert index_urls(sources) == ["https://mirror.example/simple", "file:///srv/simple"]
    assert index_urls(PipSources(no_index=True)) == []
    assert len(index_urls(PipSources())) == 1  # pip's own default, read from the installed pip


# -- the command -----------------------------------------------------------------------------------


@pytest.fixture
def pip_index(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    def use(url: str) -> None:
        monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
        monkeypatch.setenv("PIP_INDEX_URL", url)
        monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    return use


def test_the_command_exits_1_on_a_disagreement_and_writes_the_dated_report(
        index: Callable[..., str], pip_index: Callable[[str], None], catalog_file: Callable[[str], Path],
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pip_index(index())
    catalog = str(catalog_file('[pkg]\ncuda = "required"\nforce_build = { PKG_FORCE_BUILD = "1" }\n'))
    out = tmp_path / "docs" / "knowledge-check.md"
    code = main(["--catalog", catalog, "--only", "pkg", "--out", str(out),
                 "--cache-dir", str(tmp_path / "cache"), "--quiet"])
    assert code == 1
    text = out.read_text()
    assert text == capsys.readouterr().out
    assert "Run on 20" in text and "--only pkg" in text
    assert "| pkg | 1.0 | force build PKG_FORCE_BUILD |" in text and "**DISAGREE**" in text
    catalog = str(catalog_file('[pkg]\ncuda = "required"\nforce_build = { PKG_FORCE_BUILD = "TRUE" }\n'))
    cache = str(tmp_path / "cache")
    assert main(["--catalog", catalog, "--only", "pkg", "--cache-dir", cache, "--quiet"]) == 0


def test_a_source_given_by_path_is_read_and_an_unreachable_one_is_reported(
        index: Callable[..., str], pip_index: Callable[[str], None], catalog_file: Callable[[str], Path],
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pip_index(index())
    catalog = str(catalog_file(
        '[pkg]\ncuda = "required"\nforce_build = { PKG_FORCE_BUILD = "TRUE" }\n[gone]\ncuda = "required"\n'))
    sdist = tmp_path / "pkg-1.0.tar.gz"
    make_sdist(sdist)
    code = main(["--catalog", catalog, "--source", f"pkg={sdist}", "--cache-dir", str(tmp_path / "cache"),
                 "--quiet"])
    text = capsys.readouterr().out
    assert code == 0
    assert "| pkg | ? (pkg-1.0.tar.gz) | force build PKG_FORCE_BUILD |" in text
    assert "- **gone**: not checked: source not reachable (give --source gone=PATH)" in text


def test_bad_arguments_exit_2_with_a_hint(catalog_file: Callable[[str], Path], tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    catalog = str(catalog_file('[pkg]\ncuda = "required"\n'))
    assert main(["--catalog", catalog, "--only", "pgk"]) == 2
    err = capsys.readouterr().err
    assert "error: --only pgk: not an extension of the catalog" in err and "hint: did you mean pkg?" in err
    assert main(["--catalog", catalog, "--source", "pkg"]) == 2
    assert "write NAME=VALUE" in capsys.readouterr().err
    assert main(["--catalog", str(tmp_path / "none.toml")]) == 2
    assert "error: --catalog" in capsys.readouterr().err
