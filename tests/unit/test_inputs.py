"""The one reader of the files gpuenv is handed: what it refuses, and how it reads as ``open()`` does."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gpuenv.inputs import UnreadableInput, open_input, parse_json, parse_python, read_input, read_json


def test_a_missing_file_is_said_to_be_missing(tmp_path: Path) -> None:
    with pytest.raises(UnreadableInput) as info:
        read_input(tmp_path / "absent.toml")
    assert info.value.missing and info.value.problem == "no such file"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_a_fifo_or_a_directory_is_refused_at_once(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    for path, kind in ((tmp_path / "fifo", "a FIFO"), (tmp_path, "a directory")):
        with pytest.raises(UnreadableInput, match=f"not a regular file \\({kind}\\)") as info:
            read_input(path)
        assert not info.value.missing


def test_text_is_utf8_unless_another_encoding_is_asked_for(tmp_path: Path) -> None:
    path = tmp_path / "pip.conf"
    path.write_bytes(b"[global]\n# caf\xe9\n")
    with pytest.raises(UnreadableInput, match=r"not UTF-8 text \(byte 14\)"):
        read_input(path)
    with pytest.raises(UnreadableInput, match=r"not ascii text \(byte 14\)"):
        read_input(path, encoding="ascii")
    assert read_input(path, encoding="latin-1") == "[global]\n# caf\xe9\n"
    assert read_input(path, errors="replace") == "[global]\n# caf\ufffd\n"


def test_universal_newlines_read_crlf_and_cr_as_lf_and_the_default_keeps_the_bytes(tmp_path: Path) -> None:
    path = tmp_path / "README.md"
    path.write_bytes(b"# a\r\n\r\nb\rc\n")
    assert read_input(path) == "# a\r\n\r\nb\rc\n"
    assert read_input(path, universal_newlines=True) == "# a\n\nb\nc\n"


def test_a_file_over_the_limit_or_nested_too_deep_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.txt"
    path.write_bytes(b"x" * 1025)
    with pytest.raises(UnreadableInput, match="larger than"):
        read_input(path, limit=1024)
    path.write_text("a = " + "[" * 65 + "]" * 65 + "\n")
    with pytest.raises(UnreadableInput, match="nested more than 64 levels deep"):
        read_input(path)


@pytest.mark.parametrize(("text", "problem"), [
    ("[" * 100_000 + "]" * 100_000, "nested more than 64 levels deep"),  # RecursionError in json
    ('{"size": 1e999}', "out of range"),  # OverflowError wherever it meets int()
    ('{"size": -1e999}', "out of range"),
    ('{"size": NaN}', "NaN is not a number"),
    ('{"size": Infinity}', "Infinity is not a number"),
    ('{"size": ' + "9" * 5000 + "}", "not JSON gpuenv reads"),  # more digits than int() converts
    ("{", "not valid JSON"),
])
def test_json_that_would_recurse_overflow_or_be_infinite_is_refused_in_words(text: str, problem: str) -> None:
    with pytest.raises(UnreadableInput, match=problem):
        parse_json(text)


def test_json_as_written_is_read(tmp_path: Path) -> None:
    path = tmp_path / "meta.json"
    path.write_text('{"size": 12, "ratio": 0.5, "key": {"arch_list": ["9.0"]}}')
    assert read_json(path) == {"size": 12, "ratio": 0.5, "key": {"arch_list": ["9.0"]}}


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_open_input_gives_a_regular_file_and_refuses_a_fifo_or_dev_zero_at_once(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "zero").symlink_to("/dev/zero")
    for path, kind in ((tmp_path / "fifo", "a FIFO"), (tmp_path / "zero", "a device")):
        with pytest.raises(UnreadableInput, match=f"not a regular file \\({kind}\\)"):
            open_input(path)
    (tmp_path / "lib.so").write_bytes(b"\x7fELF")
    with open_input(tmp_path / "lib.so") as file:
        assert file.read() == b"\x7fELF"
    with pytest.raises(UnreadableInput, match="cannot read it"):
        open_input(str(tmp_path / "a\0b"))


@pytest.mark.parametrize(("source", "problem"), [
    ("x = " + "'a'+" * 3000 + "'b'\n", "nested"),  # the C parser's RecursionError
    ("f(" + "'a'+" * 600 + "'b')\n", "nested more than"),  # parses, deeper than a reader survives
    ("x = 1\x00\n", "null bytes"),  # a ValueError on some Pythons, a SyntaxError on others
    ("def (:\n", "invalid syntax"),
])
def test_python_source_the_parser_cannot_read_or_a_reader_would_not_survive_is_a_syntax_error(
    source: str, problem: str
) -> None:
    with pytest.raises(SyntaxError, match=problem):
        parse_python(source, "setup.py")


def test_python_source_as_written_is_parsed() -> None:
    tree = parse_python("from setuptools import setup\nsetup(name='x' + 'y', version='1.0')\n", "setup.py")
    assert [type(node).__name__ for node in tree.body] == ["ImportFrom", "Expr"]
