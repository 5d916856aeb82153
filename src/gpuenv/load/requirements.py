"""Requirements files as pip reads them: requirement lines, option lines, per-requirement options, includes.

Used where a research repository's own file stays the source of truth: a
recipe's ``[packages] requirements-files`` is read when the recipe is loaded,
and ``gpuenv init`` reads the same files to sort what a repository declares.

The grammar is pip's (pip/_internal/req/req_file.py, pip 26.3), step by step:
the bytes are decoded as pip decodes them (a BOM, a PEP 263 ``coding:`` line,
else UTF-8); lines ending in ``\\`` are joined with the next; comments
(``#`` at the start or after whitespace) are dropped; ``${VAR}`` is replaced
from the environment; a line is split at its first word that starts with ``-``
into the requirement and its options. Option lines (``-r``, ``-c``, ``-e``,
``--index-url``…) apply to the file; on a requirement line only ``--hash`` and
``--config-settings`` apply, to that requirement, and the others pip parses
and ignores (an ``--index-url`` there still says which build the repository
wants). What pip would refuse (an unknown option, a line that is no
requirement) is reported with pip's reason and the file and line. Reading is
linear in the size of the files.

Each line keeps where it came from (file and line number).
"""

from __future__ import annotations

import codecs
import os
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from gpuenv.errors import InputError
from gpuenv.inputs import UnreadableInput, read_input_bytes
from gpuenv.load.pipline import NotARequirement, ParsedRequirement, parse_requirement
from gpuenv.load.pipoptions import OptionError, Options, parse_options

#: A requirements file larger than this is not a requirements file.
MAX_BYTES = 4 << 20
#: ``-r`` nesting deeper than this is a loop or a mistake.
MAX_DEPTH = 16
#: Files read through ``-r`` and ``-c``, all together, at most.
MAX_FILES = 256

_COMMENT = re.compile(r"(^|\s+)#.*$")
_ENV_VAR = re.compile(r"(?P<var>\$\{(?P<name>[A-Z0-9_]+)\})")
_SCHEME = re.compile(r"^(http|https|file):", re.IGNORECASE)
_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF16, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
)
_CODING = re.compile(rb"coding[:=]\s*([-\w.]+)")
#: A PyTorch-style index path naming a build: /whl/cu121, /whl/nightly/cu128, /whl/cpu, /whl/rocm6.3.
_INDEX_VARIANT = re.compile(r"/whl/(?:nightly/|test/)?(cu\d{2,3}|cpu|rocm\d+(?:\.\d+)*|xpu)(?:/|$)")


@dataclass(frozen=True)
class Line:
    """One requirement of a requirements file, with where it was written."""

    #: The requirement as pip would take it ("numpy>=1.24", "-e /repo/lib[x]", "pkg @ https://…").
    text: str
    path: Path
    lineno: int
    #: The canonical distribution name, when it can be told ("numpy"); None for an unnamed URL or tree.
    name: str | None = None
    editable: bool = False
    #: What the line installs, as pip reads it (None only for a line pip refuses).
    parsed: ParsedRequirement | None = None
    #: ``--hash`` values ("sha256:…"), and ``--config-settings`` (KEY, VALUE) of this requirement.
    hashes: tuple[str, ...] = ()
    config_settings: tuple[tuple[str, str], ...] = ()
    #: Options pip parses on a requirement line and ignores there ("--index-url URL").
    ignored_options: tuple[str, ...] = ()
    #: The index an ``--index-url`` / ``--extra-index-url`` on this very line names (what the author meant).
    line_indexes: tuple[str, ...] = ()
    #: Read from a constraints file (``-c``): it limits versions, installs nothing.
    constraint: bool = False

    @property
    def where(self) -> str:
        return f"{self.path}:{self.lineno}"


@dataclass(frozen=True)
class RequirementsFile:
    requirements: tuple[Line, ...] = ()
    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    #: Lines that are neither requirements nor options gpuenv passes on, with why.
    ignored: tuple[tuple[Line, str], ...] = field(default=())
    #: Lines pip would refuse (the whole file fails in pip), with pip's reason.
    invalid: tuple[tuple[Line, str], ...] = ()
    #: Lines of constraints files (``-c``).
    constraints: tuple[Line, ...] = ()
    #: Every file read: the one asked for first, then each ``-r``/``-c`` include once.
    files: tuple[Path, ...] = ()
    #: (included file, the file and line that include it).
    includes: tuple[tuple[Path, Path, int], ...] = ()
    #: File options as pip takes them: "--no-index", "--pre", "--trusted-host HOST"…
    options: tuple[tuple[Line, str], ...] = ()

    def variants(self) -> list[tuple[str, str]]:
        """(build, where) of every PyTorch-style index the files name: ("cu121", "reqs.txt:3")."""
        found = []
        for line in self.requirements:
            for url in line.line_indexes:
                variant = index_variant(url)
                if variant:
                    found.append((variant, line.where))
        for line, option in self.options:
            variant = index_variant(option.split(" ", 1)[-1])
            if variant and option.startswith(("--index-url", "--extra-index-url")):
                found.append((variant, line.where))
        return found


def index_variant(url: str) -> str | None:
    """The torch build an index URL serves ("https://…/whl/cu121" → "cu121"), or None."""
    match = _INDEX_VARIANT.search(url.rstrip("/") + "/")
    return match[1] if match else None


def read_requirements(path: Path, *, base: Path | None = None, lenient: bool = False) -> RequirementsFile:
    """Parse ``path`` and every file it includes with ``-r``/``-c``.

    Relative paths in requirement lines are resolved against ``base`` (pip resolves them
    against the directory it runs in; default: the file's directory). Raises InputError for
    a file that cannot be read and, unless ``lenient``, for the first line pip would refuse.
    """
    path = Path(path)
    reader = _Reader(Path(base) if base is not None else path.parent)
    reader.read(path, depth=0, chain=(), constraint=False)
    if not lenient and reader.invalid:
        line, why = reader.invalid[0]
        raise InputError(
            f"{line.where}: {line.text!r}: {why}",
            hint="pip refuses this file too: correct the line or remove it",
        )
    return reader.result()


def read_requirement_lines(lines: list[tuple[int, str]], path: Path, base: Path) -> RequirementsFile:
    """Requirement lines that are not a file of their own (an environment.yml's ``pip:`` list, which
    conda writes to a requirements file beside it and hands to pip there), each with its line number."""
    reader = _Reader(base)
    reader.files.append(path)
    for lineno, item in lines:
        for _, line in logical_lines(item):
            reader._line(path, lineno, line, 0, (os.path.abspath(path),), False)
    return reader.result()


def decode(raw: bytes) -> str:
    """The text of a requirements file's bytes, decoded as pip decodes them; ValueError if it cannot be."""
    for bom, encoding in _BOMS:
        if raw.startswith(bom):
            return raw[len(bom) :].decode(encoding)
    for line in raw.split(b"\n", 2)[:2]:
        if line[:1] == b"#":
            coding = _CODING.search(line)
            if coding is not None:
                try:
                    return raw.decode(coding[1].decode("ascii"))
                except LookupError:
                    raise ValueError(f"unknown encoding {coding[1].decode('ascii', 'replace')!r}") from None
    return raw.decode("utf-8")


def logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, text) of each line pip reads: continuations joined, comments and blanks dropped,
    ``${VAR}`` expanded from the environment."""
    joined: list[str] = []
    first = 0
    for number, line in enumerate(text.splitlines(), 1):
        comment = _COMMENT.match(line) is not None
        if not line.endswith("\\") or comment:
            if comment:
                line = " " + line  # as pip: a comment stays a comment after joining
            if joined:
                joined.append(line)
                yield from _cleaned(first, "".join(joined))
                joined = []
            else:
                yield from _cleaned(number, line)
        else:
            if not joined:
                first = number
            joined.append(line.strip("\\"))
    if joined:
        yield from _cleaned(first, "".join(joined))


def _cleaned(number: int, line: str) -> Iterator[tuple[int, str]]:
    line = _COMMENT.sub("", line).strip()
    if not line:
        return
    if "${" in line:
        for var, name in _ENV_VAR.findall(line):
            value = os.environ.get(name)
            if value:
                line = line.replace(var, value)
    yield number, line


def split_line(line: str) -> tuple[str, str]:
    """pip's ``break_args_options``: the requirement, and the options from the first word with a dash."""
    words = line.split(" ")
    for i, word in enumerate(words):
        if word.startswith("-"):
            return " ".join(words[:i]), " ".join(words[i:])
    return line, ""


class _Reader:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.requirements: list[Line] = []
        self.constraints: list[Line] = []
        self.index_url: str | None = None
        self.extra: list[str] = []
        self.links: list[str] = []
        self.ignored: list[tuple[Line, str]] = []
        self.invalid: list[tuple[Line, str]] = []
        self.files: list[Path] = []
        self.includes: list[tuple[Path, Path, int]] = []
        self.options: list[tuple[Line, str]] = []

    def result(self) -> RequirementsFile:
        return RequirementsFile(
            tuple(self.requirements),
            self.index_url,
            tuple(dict.fromkeys(self.extra)),
            tuple(dict.fromkeys(self.links)),
            tuple(self.ignored),
            tuple(self.invalid),
            tuple(self.constraints),
            tuple(dict.fromkeys(self.files)),
            tuple(self.includes),
            tuple(self.options),
        )

    def read(self, path: Path, *, depth: int, chain: tuple[str, ...], constraint: bool) -> None:
        text = _text(path)
        self.files.append(path)
        for lineno, line in logical_lines(text):
            self._line(path, lineno, line, depth, (*chain, os.path.abspath(path)), constraint)

    def _line(
        self, path: Path, lineno: int, line: str, depth: int, chain: tuple[str, ...], constraint: bool
    ) -> None:
        here = Line(line, path, lineno, constraint=constraint)
        args, option_text = split_line(line)
        try:
            words = shlex.split(option_text)
        except ValueError:
            self.invalid.append((here, f"could not split the options into words: {option_text}"))
            return
        try:
            opts = parse_options(words)
        except OptionError as exc:
            self.invalid.append((here, str(exc)))
            return
        requirement = args or (opts.editables[0] if opts.editables else "")
        if requirement:
            self._requirement(here, requirement, opts, editable=not args, constraint=constraint)
            return
        if opts.requirements or opts.constraints:
            nested = opts.requirements[0] if opts.requirements else opts.constraints[0]
            self._include(here, nested, depth, chain, constraint=not opts.requirements)
        self._file_options(here, opts)

    def _requirement(self, here: Line, text: str, opts: Options, *, editable: bool, constraint: bool) -> None:
        try:
            parsed = parse_requirement(text, self.base, editable=editable)
        except NotARequirement as exc:
            self.invalid.append((Line(text, here.path, here.lineno, constraint=constraint), str(exc)))
            return
        if editable and constraint:
            self.invalid.append((here, "editable requirements are not allowed as constraints"))
            return
        shown = _shown(text.strip(), parsed)
        line = Line(
            f"-e {shown}" if editable else shown,
            here.path,
            here.lineno,
            parsed.name,
            editable,
            parsed,
            hashes=() if editable else tuple(opts.hashes),
            config_settings=tuple(opts.config_settings),
            ignored_options=tuple(opts.file_options(editable=editable)),
            line_indexes=tuple(u for u in (opts.index_url, *opts.extra_index_urls) if u),
            constraint=constraint,
        )
        (self.constraints if constraint else self.requirements).append(line)

    def _include(
        self, here: Line, nested: str, depth: int, chain: tuple[str, ...], *, constraint: bool
    ) -> None:
        if _SCHEME.search(nested):
            self.ignored.append((here, f"{nested} is on the network: gpuenv reads local files only"))
            return
        target = Path(os.path.abspath(os.path.join(os.path.dirname(here.path), nested)))
        if str(target) in chain:
            self.invalid.append((here, f"{target} includes itself (through {' -> '.join(chain)})"))
            return
        if depth + 1 > MAX_DEPTH or len(self.files) >= MAX_FILES:
            self.invalid.append(
                (
                    here,
                    f"includes nest deeper than {MAX_DEPTH} or name more than {MAX_FILES} "
                    "files: not a requirements file gpuenv reads",
                )
            )
            return
        self.includes.append((target, here.path, here.lineno))
        try:
            self.read(target, depth=depth + 1, chain=chain, constraint=constraint)
        except InputError as exc:
            self.invalid.append((here, f"cannot read the file it includes: {exc}"))

    def _file_options(self, here: Line, opts: Options) -> None:
        if opts.hashes:
            self.ignored.append((here, "--hash without a requirement: pip ignores it"))
        if opts.no_index:
            self.options.append((here, "--no-index"))
            self.ignored.append((here, "--no-index is not passed on: gpuenv chooses the indexes"))
        if opts.index_url:
            self.index_url = opts.index_url
            self.options.append((here, f"--index-url {opts.index_url}"))
        for url in opts.extra_index_urls:
            self.extra.append(url)
            self.options.append((here, f"--extra-index-url {url}"))
        if opts.find_links:  # pip takes the first of a line, beside the file if it is there
            link = opts.find_links[0]
            beside = os.path.join(os.path.dirname(os.path.abspath(here.path)), link)
            self.links.append(beside if "://" not in link and os.path.exists(beside) else link)
        for flag, value in opts.flags:
            self.options.append((here, f"{flag} {value}".strip()))
            self.ignored.append((here, f"{flag} is not passed on by gpuenv"))


def _shown(text: str, parsed: ParsedRequirement) -> str:
    """The requirement as gpuenv hands it to pip: a local tree or archive as an absolute path."""
    if (
        parsed.local is not None
        and not text.strip().startswith(("file:", "FILE:"))
        and (parsed.url is None or parsed.url.startswith("file:"))
        and "@" not in text.split(";")[0]
    ):
        extras = f"[{','.join(parsed.extras)}]" if parsed.extras else ""
        marker = f"; {parsed.marker}" if parsed.marker else ""
        return f"{parsed.local}{extras}{marker}"
    return text


def _text(path: Path) -> str:
    try:
        raw = read_input_bytes(path, limit=MAX_BYTES)  # decoded below as pip decodes them
    except UnreadableInput as exc:
        raise InputError(f"{path}: {exc.problem}", hint="name a requirements file") from None
    try:
        return decode(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(
            f"{path}: not text pip reads ({exc})",
            hint="save it as UTF-8, or declare its encoding in a '# -*- coding: … -*-' line",
        ) from None
