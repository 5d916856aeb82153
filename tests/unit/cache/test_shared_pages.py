"""The shared cache's client: index pages as servers write them, downloads checked against their hash,
servers that are down, and a folder as a shared cache (pushes at once, damaged files refused).

Servers here are this process's own (a socket on 127.0.0.1 that never answers, a refused port,
files on disk); pypiserver itself is tests/integration/test_shared_cache_slow.py.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpuenv.cache.remote import IndexClient, RemoteError, ServerDown, redact
from gpuenv.cache.remotekey import remote_name, with_key
from gpuenv.cache.shared import SharedCache, cache_source, push_to_folder, sources_from, upload_fields
from gpuenv.errors import InputError, OutputError
from gpuenv.probe.indexhttp import Link, PageError, parse_links
from tests.unit.cache.test_remotekey import FILE, KEY
from tests.unit.cache.wheelmaker import make_wheel

PYPISERVER_PAGE = """<!DOCTYPE html><html><body><h1>Links for torch-scatter</h1>
<a href="../../packages/torch_scatter-2.1.2-1gpuenvab-cp311-cp311-linux_x86_64.whl#sha256=00ff">
torch_scatter-2.1.2-1gpuenvab-cp311-cp311-linux_x86_64.whl</a><br>
<a href="../../packages/torch_scatter-2.1.1.tar.gz#md5=1234">torch_scatter-2.1.1.tar.gz</a><br>
<a href="../other/">other/</a>
</body></html>"""


def test_a_pypiserver_project_page_reads_with_its_hashes() -> None:
    links = parse_links(PYPISERVER_PAGE.encode(), "text/html", "http://cache:8080/simple/torch-scatter/")
    assert links == [
        Link("torch_scatter-2.1.2-1gpuenvab-cp311-cp311-linux_x86_64.whl",
             "http://cache:8080/packages/torch_scatter-2.1.2-1gpuenvab-cp311-cp311-linux_x86_64.whl",
             {"sha256": "00ff"}),
        Link("torch_scatter-2.1.1.tar.gz", "http://cache:8080/packages/torch_scatter-2.1.1.tar.gz",
             {"md5": "1234"}),
    ], "a link to a folder is not a file"


def test_a_find_links_page_with_a_base_and_yanked_files() -> None:
    page = ('<html><head><base href="https://files.example/whl/"></head><body>'
            '<a href="torch_scatter-2.1.2%2Bpt25cu121-cp312-cp312-linux_x86_64.whl">x</a>'
            '<a href="old.whl" data-yanked="broken">old.whl</a></body></html>')
    first, yanked = parse_links(page.encode(), "text/html", "https://mirror.example/whl/torch-2.5.0+cu121.html")
    assert first.file_name == "torch_scatter-2.1.2+pt25cu121-cp312-cp312-linux_x86_64.whl"
    assert first.url.startswith("https://files.example/whl/")
    assert yanked.yanked


def test_a_pep_691_page_reads_its_hashes_and_yanked_flags() -> None:
    page = json.dumps({"meta": {"api-version": "1.1"}, "name": "torch-scatter", "files": [
        {"filename": "a-1.0-py3-none-any.whl", "url": "../../f/a-1.0-py3-none-any.whl",
         "hashes": {"sha256": "AB"}, "yanked": False},
        {"filename": "a-0.9-py3-none-any.whl", "url": "https://x.example/a-0.9-py3-none-any.whl",
         "hashes": {}, "yanked": "bad"},
    ]})
    links = parse_links(page.encode(), "application/vnd.pypi.simple.v1+json", "http://devpi/root/pypi/+simple/a/")
    assert links[0] == Link("a-1.0-py3-none-any.whl", "http://devpi/root/pypi/f/a-1.0-py3-none-any.whl",
                            {"sha256": "ab"})
    assert links[1].yanked
    with pytest.raises(PageError, match="not a PEP 691 page"):
        parse_links(b"{}", "application/vnd.pypi.simple.v1+json", "http://devpi/x/")


@pytest.mark.parametrize("body", [b"[" * 100_000 + b"]" * 100_000, b'{"files": [{"size": 1e999}]}',
                                  b"\xff{}"], ids=["nested-100000-deep", "infinite-number", "not-utf8"])
def test_a_hostile_pep_691_page_is_a_page_error_not_a_traceback(body: bytes) -> None:
    """Campaign 3: a shared cache's JSON page was read with json.loads, whose RecursionError on
    100000 brackets is not the ValueError it caught."""
    with pytest.raises(PageError, match="not a PEP 691 page"):
        parse_links(body, "application/vnd.pypi.simple.v1+json", "http://devpi/x/")


def test_a_remote_page_cannot_send_a_reader_to_files_on_disk() -> None:
    page = b'<a href="file:///etc/passwd">x.whl</a><a href="ftp://h/y.whl">y.whl</a><a href="/z.whl">z</a>'
    assert [link.file_name for link in parse_links(page, "text/html", "http://cache/simple/a/")] == ["z.whl"]
    assert len(parse_links(page, "text/html", "file:///srv/cache/a/index.html")) == 2


def test_a_password_never_shows() -> None:
    assert redact("https://me:s3cret@cache.lab/simple/") == "https://me:***@cache.lab/simple/"
    source = cache_source("https://me:s3cret@cache.lab/simple/")
    assert "s3cret" not in str(source)
    assert source.upload_url == "https://me:s3cret@cache.lab/"


def test_cache_sources_and_where_they_take_uploads(tmp_path: Path) -> None:
    assert cache_source("http://cache.lab:8080/simple/").upload_url == "http://cache.lab:8080/"
    assert cache_source("http://devpi.lab/team/gpu/+simple/").upload_url == "http://devpi.lab/team/gpu/"
    folder = cache_source(str(tmp_path / "shared"))
    assert folder.folder == tmp_path / "shared" and folder.read_url == (tmp_path / "shared").as_uri() + "/"
    both = sources_from([], {"GPUENV_CACHE_FROM": "http://a.lab/simple/ http://b.lab/simple/ http://a.lab/simple/"})
    assert [s.text for s in both] == ["http://a.lab/simple/", "http://b.lab/simple/"]
    for bad in ("", "ftp://x/", "http:///simple/", "http://a b/"):
        with pytest.raises(InputError):
            cache_source(bad)


def test_upload_fields_come_from_the_wheels_metadata(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, FILE)
    fields = upload_fields(wheel, "00" * 32)
    assert fields["name"] == "torch-scatter" and fields["version"] == "2.1.2"
    assert fields["pyversion"] == "cp311" and fields["filetype"] == "bdist_wheel"


# -- servers that do not answer -------------------------------------------------------------------


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A port that accepts connections and never answers (a hung server)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    yield f"http://127.0.0.1:{server.getsockname()[1]}/simple/"
    server.close()


def refused_url() -> str:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    return f"http://127.0.0.1:{port}/simple/"


def test_a_hung_server_costs_one_timeout_is_warned_about_once_and_then_skipped(
    silent_server: str, tmp_path: Path
) -> None:
    warnings: list[str] = []
    shared = SharedCache([cache_source(silent_server)], tmp_path, client=IndexClient(timeout=0.5),
                         warn=warnings.append)
    started = time.monotonic()
    assert shared.fetch(KEY) is None
    first = time.monotonic() - started
    started = time.monotonic()
    assert shared.fetch(KEY) is None
    assert shared.fetch(KEY) is None
    later = time.monotonic() - started
    assert first < 5 and later < first, "the second and third lookups do not wait again"
    assert warnings == [f"shared cache {silent_server} no answer within 0.5 s; going on without it"]


def test_a_refused_port_is_down_at_once_and_the_next_source_still_answers(tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    push_to_folder(with_key(make_wheel(tmp_path / "built", FILE), KEY, tmp_path / "stage"), KEY, folder)
    warnings: list[str] = []
    shared = SharedCache([cache_source(refused_url()), cache_source(str(folder))], tmp_path / "work",
                         warn=warnings.append)
    found = shared.fetch(KEY)
    assert found is not None and found.source.folder == folder
    assert found.wheel.name == FILE, "stored under the name its builder gave it"
    assert len(warnings) == 1 and "cannot be reached" in warnings[0]
    with pytest.raises(ServerDown):
        shared.client.page(shared.sources[0].read_url)


def test_a_download_whose_hash_differs_from_the_page_leaves_nothing(tmp_path: Path) -> None:
    source = make_wheel(tmp_path / "src", FILE)
    link = Link(FILE, source.as_uri(), {"sha256": "00" * 32})
    with pytest.raises(RemoteError, match="altered or cut short"):
        IndexClient().download(link, tmp_path / "dl")
    assert list((tmp_path / "dl").iterdir()) == []


# -- a folder as a shared cache -------------------------------------------------------------------


def test_a_damaged_or_misnamed_wheel_in_a_shared_folder_is_refused_by_name(tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    push_to_folder(with_key(make_wheel(tmp_path / "built", FILE), KEY, tmp_path / "stage"), KEY, folder)
    (placed,) = (folder / "torch-scatter").glob("*.whl")
    placed.write_bytes(placed.read_bytes()[:-100])  # a copy cut short behind gpuenv's back
    page = folder / "torch-scatter" / "index.html"
    page.write_text(page.read_text().split("#sha256=")[0] + '">x</a></body></html>')  # no hash to catch it
    warnings: list[str] = []
    assert SharedCache([cache_source(str(folder))], tmp_path / "w", warn=warnings.append).fetch(KEY) is None
    assert warnings and warnings[0].startswith(f"refused {placed.name} from {folder}: ")
    assert list((tmp_path / "w" / "downloads").glob("*.whl")) == []


def test_a_push_puts_back_a_damaged_wheel_of_the_same_key(tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    keyed = with_key(make_wheel(tmp_path / "built", FILE), KEY, tmp_path / "stage")
    push_to_folder(keyed, KEY, folder)
    placed = folder / "torch-scatter" / keyed.name
    placed.write_bytes(b"damaged")
    said = push_to_folder(keyed, KEY, folder)
    assert said.startswith(f"replaced a damaged {keyed.name}")
    assert placed.read_bytes() == keyed.read_bytes()
    assert "already in" in push_to_folder(keyed, KEY, folder)


def test_nodes_pushing_the_same_key_into_a_folder_at_once_leave_one_sound_file(tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    # Two builds of one key on two nodes: different bytes, both sound.
    builds = [make_wheel(tmp_path / f"node{i}", FILE, {"torch_scatter/__init__.py": b"n = %d\n" % i})
              for i in range(4)]
    wheels = [with_key(build, KEY, tmp_path / f"stage{i}") for i, build in enumerate(builds)]
    said: list[str] = []
    errors: list[BaseException] = []

    def push(wheel: Path) -> None:
        try:
            said.append(push_to_folder(wheel, KEY, folder))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=push, args=(w,)) for w in wheels]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert sum(s.startswith("pushed") for s in said) == 1
    assert [p.name for p in (folder / "torch-scatter").glob("*.whl")] == [remote_name(FILE, KEY)]
    page = (folder / "torch-scatter" / "index.html").read_text()
    assert page.count(".whl#sha256=") == 1
    assert SharedCache([cache_source(str(folder))], tmp_path / "w").fetch(KEY) is not None


def test_another_key_of_the_same_distribution_is_not_handed_out(tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    other = dataclasses.replace(KEY, arch_list=("8.0",))
    push_to_folder(with_key(make_wheel(tmp_path / "built", FILE), other, tmp_path / "stage"), other, folder)
    assert SharedCache([cache_source(str(folder))], tmp_path / "w").fetch(KEY) is None
    assert SharedCache([cache_source(str(folder))], tmp_path / "w").fetch(other) is not None


def test_a_push_never_replaces_an_index_page_it_did_not_write(tmp_path: Path) -> None:
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "index.html").write_text("<html>the lab's own page</html>")
    keyed = with_key(make_wheel(tmp_path / "built", FILE), KEY, tmp_path / "stage")
    with pytest.raises(OutputError, match="not an index page gpuenv wrote"):
        push_to_folder(keyed, KEY, folder)
    assert (folder / "index.html").read_text() == "<html>the lab's own page</html>"
    assert not list(folder.rglob("*.whl"))


def test_a_wheel_is_filed_under_the_project_its_file_names_and_found_there_by_the_trees_name(
    tmp_path: Path,
) -> None:
    """A local tree's key is named by its folder ("ops"), its wheel by its setup.py ("torch-scatter"):
    the push files it where an index would (the wheel's project), and a fetch asked with the tree's
    declared name finds it; asked with the key's name alone, it is a miss, not a wrong hand-out."""
    folder = tmp_path / "shared"
    key = dataclasses.replace(KEY, name="ops")
    keyed = with_key(make_wheel(tmp_path / "built", FILE), key, tmp_path / "stage")
    said = push_to_folder(keyed, key, folder)
    assert said.startswith("pushed ") and not (folder / "ops").exists()
    assert [p.name for p in (folder / "torch-scatter").glob("*.whl")] == [remote_name(FILE, key)]
    shared = SharedCache([cache_source(str(folder))], tmp_path / "w")
    assert shared.fetch(key) is None
    found = shared.fetch(key, also=["torch_scatter"])
    assert found is not None and found.remote_name == remote_name(FILE, key)
