"""What others can leave where gpuenv reads and writes (issue 26), as builders the tests share.

- :data:`ENTRY_DAMAGES`: what anyone who can write a shared wheel cache can put in one entry;
- :data:`TOOLKIT_DAMAGES`: the same for an entry of the toolkit cache;
- :data:`ANSWERS`: answer lines of an env's ``python`` that are not the JSON gpuenv's scripts print;
- :func:`damaged_venv`: a real venv whose files are damaged the way old or broken installs are;
- :data:`PLACES` and :func:`make_place`: what a path gpuenv is asked to write can already be (a link
  out of its folder, to nowhere, a loop, a read-only file, a folder, a FIFO...).

Each is named, so a failure names the input that caused it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.unit.probe.test_binaries import crafted_elf

Damage = Callable[[Path, dict[str, Any]], "dict[str, Any] | None"]


def _set_key(field: str, value: Any) -> Damage:
    def damage(entry: Path, meta: dict[str, Any]) -> dict[str, Any]:
        meta["key"][field] = value
        return meta
    return damage


def _replace_meta(make: Callable[[Path], None]) -> Damage:
    def damage(entry: Path, meta: dict[str, Any]) -> None:
        (entry / "meta.json").unlink()
        make(entry / "meta.json")
    return damage


def _set(field: str, value: Any) -> Damage:
    def damage(entry: Path, meta: dict[str, Any]) -> dict[str, Any]:
        meta[field] = value
        return meta
    return damage


def _wheel_is_a_fifo(entry: Path, meta: dict[str, Any]) -> dict[str, Any]:
    wheel = entry / meta["wheel"]
    wheel.unlink()
    os.mkfifo(wheel)
    meta["size"] = 0
    return meta


def _last_used_links_out(entry: Path, meta: dict[str, Any]) -> dict[str, Any]:
    (entry / "last_used").unlink()
    (entry / "last_used").symlink_to(outside_of(entry) / "TOUCHED")
    return meta


def _huge_size(entry: Path, meta: dict[str, Any]) -> None:
    text = json.dumps(meta).replace('"size": ', '"size": 1e999, "was": ')
    (entry / "meta.json").write_text(text)


def outside_of(entry: Path) -> Path:
    """The ``outside`` folder next to the cache an entry is in (``root/v1/ab/<digest>``)."""
    return entry.parents[3] / "outside"


#: What a hostile or broken writer of a shared cache can leave in one entry.
ENTRY_DAMAGES: dict[str, Damage] = {
    "meta.json is a FIFO": _replace_meta(lambda p: os.mkfifo(p)),
    "meta.json links to /dev/zero": _replace_meta(lambda p: p.symlink_to("/dev/zero")),
    "meta.json is 20 MB": _replace_meta(lambda p: p.write_bytes(b" " * (20 << 20))),
    "meta.json nested 100000 deep": _replace_meta(lambda p: p.write_text("[" * 100_000 + "]" * 100_000)),
    "meta.json is not UTF-8": _replace_meta(lambda p: p.write_bytes(b'{"key": "\xff"}')),
    "size is 1e999": _huge_size,
    "an arch 'abc'": _set_key("arch_list", ["abc"]),
    "an arch in Arabic-Indic digits": _set_key("arch_list", ["\u0669.\u0660"]),
    "torch_version climbs out": _set_key("torch_version", "x/../../../outside/ESCAPED"),
    "torch_cuda climbs out": _set_key("torch_cuda", "../../outside"),
    "a name that sets the window title": _set_key("name", "\x1b]0;pwned\x07scatter"),
    "a version with a newline": _set_key("version", "2.1.2\nok   forged"),
    "knobs that are not pairs": _set_key("knobs", [["A"], 5]),
    "digest climbs out": _set("digest", "../../../../outside/x"),
    "created is a table": _set("created", {"a": 1}),
    "the wheel is a FIFO": _wheel_is_a_fifo,
    "last_used links out of the cache": _last_used_links_out,
}

#: Damages that leave the entry usable: it is listed and exported, and nothing outside is touched.
SOUND_DAMAGES = frozenset({"last_used links out of the cache"})

TOOLKIT_META: dict[str, Any] = {"schema": 1, "version": "13.0", "release": "13.0.105", "size": 10,
                                "created": "2026-01-01T00:00:00+00:00", "wheels": {}}

#: An nvcc that never answers, nor lets its output pipe close (a child in the background holds it).
HUNG_NVCC = "#!/bin/sh\n/bin/sleep 300 &\n/bin/sleep 300\n"


def _toolkit_meta(home: Path, text: str | None) -> None:
    if text is not None:
        (home / "gpuenv-toolkit.json").write_text(text)


TOOLKIT_DAMAGES: dict[str, Callable[[Path], None]] = {
    "record is a FIFO": lambda h: os.mkfifo(h / "gpuenv-toolkit.json"),
    "record links to /dev/zero": lambda h: (h / "gpuenv-toolkit.json").symlink_to("/dev/zero"),
    "size 1e999": lambda h: _toolkit_meta(h, json.dumps(TOOLKIT_META).replace('"size": 10', '"size": 1e999')),
    "record nested 100000 deep": lambda h: _toolkit_meta(h, "[" * 100_000 + "]" * 100_000),
    "release is a number": lambda h: _toolkit_meta(h, json.dumps({**TOOLKIT_META, "release": 13})),
    "nvcc hangs": lambda h: ((h / "bin" / "nvcc").write_text(HUNG_NVCC),
                             _toolkit_meta(h, json.dumps(TOOLKIT_META))),
    "nvcc says Arabic-Indic digits": lambda h: (
        (h / "bin" / "nvcc").write_text("#!/bin/sh\necho 'Cuda compilation tools, release "
                                        "\u0661\u0663.\u0660, V\u0661\u0663.\u0660.1'\n"),
        _toolkit_meta(h, json.dumps(TOOLKIT_META))),
}

#: Answer lines a fake env's python prints after gpuenv's marker, whatever it was asked.
ANSWERS: dict[str, str] = {
    "a list": "[1, 2, 3]",
    "null": "null",
    "a string with escapes": json.dumps("\x1b]0;pwned\x07"),
    "wrong types": json.dumps({"installed": 5, "interpreter": {"version": 3}, "torch": {"version": []},
                               "failures": [], "markers": 7}),
    "torch facts of the wrong types": json.dumps({"version": 5, "cuda": [], "cxx11_abi": "yes",
                                                  "arch_list": "sm_90"}),
    "nested 100000 deep": "[" * 100_000 + "]" * 100_000,
    "a float too large": '{"version": 1e999}',
    "not JSON": "{'python': 3}",
    "a NUL in site-packages": json.dumps({"version": "3.11.7", "python_tag": "cp311", "abi_tag": "cp311",
                                          "platform_tag": "linux_x86_64", "purelib": "/tmp/a\x00b",
                                          "markers": {}}),
}


def fake_env(venv: Path, answer: str) -> Path:
    """A folder shaped like a venv whose ``python`` prints ``answer`` after gpuenv's marker."""
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (venv / "answer").write_text("@@gpuenv-json@@" + answer + "\n")
    (venv / "bin" / "python").write_text(f"#!/bin/sh\ncat {venv / 'answer'}\n")
    (venv / "bin" / "python").chmod(0o755)
    return venv


def damaged_venv(venv: Path) -> Path:
    """A real venv (no pip) holding an extension and packages whose files are damaged."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next(venv.glob("lib/python*/site-packages"))
    # Latin-1 METADATA and RECORD (old packages), a crafted ELF and a FIFO among its compiled files.
    info = site / "latin_ext-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_bytes(b"Metadata-Version: 2.1\nName: latin-ext\nVersion: 1.0\n"
                                    b"Author: Fran\xe7ois\n\nD\xe9j\xe0 vu\n")
    (site / "latin_ext").mkdir()
    (site / "latin_ext" / "__init__.py").write_text("")
    (site / "latin_ext" / "_crafted.so").write_bytes(crafted_elf(entry_size=0, count=0,
                                                                 count_in_section0=1 << 40))
    os.mkfifo(site / "latin_ext" / "_fifo.so")
    (info / "RECORD").write_bytes(b"latin_ext/__init__.py,,\nlatin_ext/_crafted.so,,\nlatin_ext/_fifo.so,,\n"
                                  b"latin_ext/caf\xe9.so,,\n/etc/passwd.so,,\n../../x.so,,\n")
    (info / "top_level.txt").write_text("latin_ext\n")
    # direct_url.json files of the wrong shape.
    for i, text in enumerate(['{"url": 5, "dir_info": []}', "[1]", '{"url": "file:///x.whl", "archive_info": '
                              '{"hashes": "sha256"}}', "{not json", '{"url": "x", "vcs_info": "git"}',
                              '{"url": "file:///tmp/a.whl", "archive_info": {"hash": 1e999}}']):
        other = site / f"odd{i}-1.0.dist-info"
        other.mkdir()
        (other / "METADATA").write_text(f"Metadata-Version: 2.1\nName: odd{i}\nVersion: 1.0\n")
        (other / "direct_url.json").write_text(text)
    # A package whose METADATA is a FIFO: reading it would hang.
    (site / "fifo_meta-1.0.dist-info").mkdir()
    os.mkfifo(site / "fifo_meta-1.0.dist-info" / "METADATA")
    # .pth lines with a NUL and a link loop (the interpreter skips both; so must gpuenv's reader).
    (site / "nul.pth").write_bytes(b"/tmp/a\x00b\n")
    (site / "loop").symlink_to("loop")
    (site / "loop.pth").write_text("loop\n")
    return venv


def _read_only(path: Path) -> None:
    path.write_text("# mine\n")
    path.chmod(0o444)


#: What a path gpuenv is asked to write can already be; ``outside`` is a folder beside the one
#: asked (nothing in it may change).
PLACES: dict[str, Callable[[Path, Path], None]] = {
    "a link to a file outside": lambda p, outside: p.symlink_to(outside / ".bashrc"),
    "a link to a folder outside": lambda p, outside: p.symlink_to(outside),
    "a link to nowhere outside": lambda p, outside: p.symlink_to(outside / "not-there"),
    "a link to nowhere inside": lambda p, outside: p.symlink_to("not-there"),
    "a link loop": lambda p, outside: p.symlink_to(p.name),
    "a read-only file": lambda p, outside: _read_only(p),
    "a folder": lambda p, outside: p.mkdir(),
    "a FIFO": lambda p, outside: os.mkfifo(p),
    "an empty file": lambda p, outside: p.write_bytes(b""),
    "a CRLF file": lambda p, outside: p.write_bytes(b"# mine\r\n\r\nline\r\n"),
    "a Latin-1 file": lambda p, outside: p.write_bytes(b"# caf\xe9\n"),
    "a link to /dev/null": lambda p, outside: p.symlink_to("/dev/null"),
}


def make_outside(root: Path) -> Path:
    """The folder beside a target whose files a link may point at, and nothing may change."""
    outside = root / "outside"
    (outside / "ESCAPED").mkdir(parents=True)
    (outside / ".bashrc").write_text("export PATH=$HOME/bin:$PATH\n")
    (outside / "ESCAPED" / "keep.txt").write_text("an earlier group's place\n")
    return outside


def tree(root: Path) -> dict[str, str]:
    """Every path under ``root`` without following links: a file's bytes (as text), a link's target,
    a folder, a FIFO, with its permission bits."""
    found: dict[str, str] = {}
    if not os.path.lexists(root):
        return found
    for directory, folders, files in os.walk(root):
        for name in [*folders, *files]:
            path = Path(directory) / name
            info = path.lstat()
            kind = ("link -> " + os.readlink(path) if path.is_symlink()
                    else "folder" if path.is_dir()
                    else "fifo" if not path.is_file()
                    else path.read_bytes().decode("latin-1")[:4096])
            found[str(path.relative_to(root))] = f"{oct(info.st_mode & 0o7777)} {kind}"
    return found
