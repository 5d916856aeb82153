"""The shared cache against a real pypiserver: pushes, concurrent pushes of one key, an upload cut off,
a wheel on the server that is not the key it is named for. (Setups through it:
tests/integration/test_shared_cache_slow.py.)"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from gpuenv.cache.remote import IndexClient
from gpuenv.cache.remotekey import remote_name, with_key
from gpuenv.cache.shared import SharedCache, cache_source, upload_fields
from tests.integration.pypiserver import Server, pypiserver
from tests.unit.cache.test_remotekey import FILE, KEY, changed
from tests.unit.cache.wheelmaker import make_wheel


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with pypiserver(tmp_path / "packages") as running:
        yield running


def build(tmp_path: Path, node: int) -> Path:
    """One node's build of KEY: a sound wheel whose bytes differ from other nodes'."""
    return make_wheel(tmp_path / f"node{node}", FILE, {"torch_scatter/__init__.py": b"NODE = %d\n" % node})


def test_a_pushed_wheel_is_found_by_its_key_and_is_the_file_pushed(server: Server, tmp_path: Path) -> None:
    source = cache_source(server.simple)
    said = SharedCache([source], tmp_path / "a").push(KEY, build(tmp_path, 1), source)
    assert said == f"pushed {remote_name(FILE, KEY)} to {server.simple}"
    (stored,) = server.packages.glob("*.whl")
    found = SharedCache([source], tmp_path / "b").fetch(KEY)
    assert found is not None and found.wheel.read_bytes() == stored.read_bytes()
    again = SharedCache([source], tmp_path / "a").push(KEY, build(tmp_path, 1), source)
    assert again.endswith("(the same file)")
    other = changed(KEY, torch_version="2.13.0+cu130")
    assert SharedCache([source], tmp_path / "c").fetch(other) is None, "another ABI is a miss"


def test_two_nodes_pushing_one_key_at_once_leave_one_sound_wheel(server: Server, tmp_path: Path) -> None:
    source = cache_source(server.simple)
    said: list[str] = []
    errors: list[BaseException] = []

    def push(node: int) -> None:
        try:
            said.append(SharedCache([source], tmp_path / f"w{node}").push(KEY, build(tmp_path, node), source))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=push, args=(node,)) for node in (1, 2, 3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert sum(s.startswith("pushed") for s in said) == 1
    assert sum("pushed by another node; checked: sound, same key" in s for s in said) == 2, said
    assert len(list(server.packages.glob("*.whl"))) == 1
    assert SharedCache([source], tmp_path / "r").fetch(KEY) is not None


def test_an_upload_cut_off_midway_leaves_nothing_a_reader_takes_and_the_next_push_works(
    server: Server, tmp_path: Path
) -> None:
    keyed = with_key(build(tmp_path, 1), KEY, tmp_path / "stage")
    data = keyed.read_bytes()
    boundary = "cutoff"
    fields = upload_fields(keyed, "00" * 32) | {":action": "file_upload", "protocol_version": "1"}
    head = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
                    for k, v in fields.items())
    head += (f'--{boundary}\r\nContent-Disposition: form-data; name="content"; filename="{keyed.name}"\r\n'
             "Content-Type: application/octet-stream\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    parts = urlsplit(server.root)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as conn:
        conn.sendall((f"POST / HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                      f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
                      f"Content-Length: {len(head) + len(data) + len(tail)}\r\n\r\n").encode())
        conn.sendall(head + data[: len(data) // 2])  # the node dies here

    source = cache_source(server.simple)
    warnings: list[str] = []
    assert SharedCache([source], tmp_path / "r", warn=warnings.append).fetch(KEY) is None
    held = list(server.packages.glob("*.whl"))
    if held:  # pypiserver 2.4 keeps what it read of a cut-off upload: readers refuse it by name
        assert warnings == [f"refused {keyed.name} from {server.simple}: not a readable wheel (zip) file: "
                            "File is not a zip file"]
        said = SharedCache([source], tmp_path / "p").push(KEY, keyed, source)
        assert said == f"replaced a damaged {keyed.name} on {server.simple}"
    else:
        assert SharedCache([source], tmp_path / "p").push(KEY, keyed, source).startswith("pushed")
    found = SharedCache([source], tmp_path / "r2").fetch(KEY)
    assert found is not None and found.wheel.read_bytes() == data


def test_a_wheel_on_the_server_that_is_not_its_names_key_is_refused_by_name(
    server: Server, tmp_path: Path
) -> None:
    other = changed(KEY, cxx11_abi=False)
    impostor = with_key(build(tmp_path, 1), other, tmp_path / "stage")
    named = impostor.rename(impostor.with_name(remote_name(FILE, KEY)))
    client = IndexClient()
    client.upload(cache_source(server.simple).upload_url, named, upload_fields(named, "00" * 32))
    warnings: list[str] = []
    assert SharedCache([cache_source(server.simple)], tmp_path / "r", warn=warnings.append).fetch(KEY) is None
    assert warnings == [f"refused {named.name} from {server.simple}: its packed key is not the one its name "
                        "gives: C++11 ABI off → on"]
    # A node that built the key for real puts its wheel in the impostor's place.
    said = SharedCache([cache_source(server.simple)], tmp_path / "p").push(KEY, build(tmp_path, 2),
                                                                           cache_source(server.simple))
    assert said.startswith("replaced a damaged")
    assert SharedCache([cache_source(server.simple)], tmp_path / "r2").fetch(KEY) is not None
