"""One requirement of a requirements file, as pip reads it: a name, a URL, a path or an archive.

pip's ``parse_req_from_line`` and ``parse_editable`` (pip/_internal/req/constructors.py,
pip 26.3) decide what a requirement line installs: a URL (``https:``, ``file:``,
``git+https:``…) is taken as a link, with environment markers after ``"; "``; a
string that looks like a path (a separator, or a leading dot) and names a
directory must be a project (``setup.py`` or ``pyproject.toml``); an archive
name (``.whl``, ``.tar.gz``…) is a file link; anything else is a PEP 508
requirement. A wheel link is named by its file name, another link by its
``#egg=`` fragment, or not at all (pip learns the name by building it).
Relative paths are resolved against ``base``: pip resolves them against the
directory it runs in, which for a repository's files is its root.

:func:`parse_requirement` mirrors those rules without pip; the differential
test (tests/unit/plan/test_pip_grammar.py) holds it to pip's own parser.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from packaging.markers import InvalidMarker, Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

#: The URL schemes pip's ``is_url`` accepts: its own and every VCS scheme (pip/_internal/vcs).
VCS_SCHEMES = (
    "bzr+http",
    "bzr+https",
    "bzr+ssh",
    "bzr+sftp",
    "bzr+ftp",
    "bzr+lp",
    "bzr+file",
    "git+http",
    "git+https",
    "git+ssh",
    "git+git",
    "git+file",
    "hg+file",
    "hg+http",
    "hg+https",
    "hg+ssh",
    "hg+static-http",
    "svn+ssh",
    "svn+http",
    "svn+https",
    "svn+svn",
    "svn+file",
)
URL_SCHEMES = ("http", "https", "file", "ftp", *VCS_SCHEMES)
#: pip/_internal/utils/filetypes.py ARCHIVE_EXTENSIONS.
ARCHIVE_EXTENSIONS = (
    ".zip",
    ".whl",
    ".tar.bz2",
    ".tbz",
    ".tar.gz",
    ".tgz",
    ".tar",
    ".tar.xz",
    ".txz",
    ".tlz",
    ".tar.lz",
    ".tar.lzma",
)
_EGG = re.compile(r"[#&]egg=([^&]*)")
_SUBDIRECTORY = re.compile(r"[#&]subdirectory=([^&]*)")
_PROJECT_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)
_EXTRAS = re.compile(r"^(.+)(\[[^\]]+\])$")


class NotARequirement(ValueError):
    """What pip would say about a line it cannot install."""


@dataclass(frozen=True)
class ParsedRequirement:
    """What one requirement line installs."""

    #: The canonical distribution name, or None where only building tells it (a URL without #egg=).
    name: str | None
    #: The version specifier ("==2.2.2", ">=1.0,<2"), "" for none.
    specifier: str = ""
    extras: tuple[str, ...] = ()
    #: The environment marker ('sys_platform == "linux"'), or None.
    marker: str | None = None
    #: The link it installs from (a direct URL, a VCS URL, a file: URL of a local tree or archive), or None.
    url: str | None = None
    #: A local tree or archive, absolute, or None.
    local: Path | None = None
    editable: bool = False

    @property
    def vcs(self) -> bool:
        return self.url is not None and urlsplit(self.url).scheme.lower() in VCS_SCHEMES

    @property
    def subdirectory(self) -> str | None:
        match = _SUBDIRECTORY.search(self.url or "")
        return match[1] if match else None


def is_url(text: str) -> bool:
    """pip's ``is_url``: a scheme it fetches from (``git:`` alone is not one)."""
    try:
        scheme = urlsplit(text).scheme
    except ValueError:
        return False
    return bool(scheme) and scheme in URL_SCHEMES


def looks_like_path(text: str) -> bool:
    return "/" in text or text.startswith(".")


def is_archive(text: str) -> bool:
    return text.lower().endswith(ARCHIVE_EXTENSIONS)


def parse_requirement(text: str, base: Path, *, editable: bool = False) -> ParsedRequirement:
    """What ``text`` installs, as pip reads it; relative paths against ``base``.

    Raises :class:`NotARequirement` with pip's reason where pip would refuse the line.
    """
    if "\0" in text:
        raise NotARequirement("it holds a NUL byte")
    return _editable(text, base) if editable else _line(text, base)


def _line(text: str, base: Path) -> ParsedRequirement:
    separator = "; " if is_url(text) else ";"
    marker: str | None = None
    if separator in text:
        text, marker_text = text.split(separator, 1)
        marker_text = marker_text.strip()
        if marker_text:
            try:
                marker = str(Marker(marker_text))
            except InvalidMarker as exc:
                raise NotARequirement(f"invalid environment marker: {exc}") from None
    name = text.strip()
    if is_url(name):
        return _link(name, marker, ())
    path, extras = _strip_extras(_absolute(base, name))
    if looks_like_path(name) and os.path.isdir(path):
        if not _installable(path):
            raise NotARequirement(
                f"directory {name!r} is not installable: neither 'setup.py' nor 'pyproject.toml' is in it"
            )
        return _link(Path(path).as_uri(), marker, extras, local=Path(path))
    if is_archive(path) and (os.path.isfile(path) or not _pep508_url(name)):
        return _link(Path(path).as_uri(), marker, extras, local=Path(path))
    return _pep508(name, marker)


def _pep508(text: str, marker: str | None) -> ParsedRequirement:
    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        hint = ""
        if "=" in text and not any(op in text for op in ("~=", "==", "!=", "<=", ">=", "<", ">", "===")):
            hint = " (= is not a valid operator: did you mean ==?)"
        elif "/" in text:
            hint = " (it looks like a path, and there is no such file or project)"
        raise NotARequirement(f"not a requirement pip reads: {exc}{hint}") from None
    _check_versions(req)
    if req.marker is not None and marker is not None:
        # pip keeps the first marker split off; "a; b" with a marker in ``a`` cannot happen.
        marker = f"({req.marker}) and ({marker})"
    url = req.url
    local = _file_path(url) if url else None
    return ParsedRequirement(
        str(canonicalize_name(req.name)),
        str(req.specifier),
        tuple(sorted(req.extras)),
        marker if marker is not None else (str(req.marker) if req.marker else None),
        url,
        local,
    )


def _link(
    url: str, marker: str | None, extras: tuple[str, ...], *, local: Path | None = None
) -> ParsedRequirement:
    if local is None and urlsplit(url).scheme == "file":
        local = _file_path(url)
    filename = _filename(url)
    if filename.lower().endswith(".whl"):
        try:
            name, version, _, _ = parse_wheel_filename(filename)
        except InvalidWheelFilename as exc:
            raise NotARequirement(f"not a wheel file name: {exc}") from None
        return ParsedRequirement(str(name), f"=={version}", extras, marker, url, local)
    egg = _egg(url)
    named = _pep508(egg, None) if egg is not None else None
    return ParsedRequirement(
        named.name if named else None,
        named.specifier if named else "",
        extras or (named.extras if named else ()),
        marker,
        url,
        local,
    )


def _check_versions(req: Requirement) -> None:
    """Refuse a version no one can compare: packaging accepts ``torch==`` followed by 10000 digits
    in a specifier, and only raises (a ValueError, not InvalidVersion) when the version is read."""
    for spec in req.specifier:
        try:
            Version(spec.version.removesuffix(".*"))
        except InvalidVersion:
            continue  # "===" takes any text, and packaging has already checked the others
        except ValueError:
            raise NotARequirement(
                f"{req.name}{spec.operator}{spec.version[:40]}...: a version with a number too long to read"
            ) from None


def _editable(text: str, base: Path) -> ParsedRequirement:
    try:
        req = Requirement(text)
    except InvalidRequirement:
        req = None
    if req is not None and req.url:
        _check_editable_link(text, req.url, named=True)
        return ParsedRequirement(
            str(canonicalize_name(req.name)),
            "",
            tuple(sorted(req.extras)),
            str(req.marker) if req.marker else None,
            req.url,
            _file_path(req.url),
            editable=True,
        )
    url, extras = _strip_extras(text)
    local: Path | None = None
    absolute = _absolute(base, url)
    if os.path.isdir(absolute):
        local = Path(absolute)
        url = local.as_uri()
    if url.lower().startswith("file:"):
        egg = _egg(url)
        return ParsedRequirement(
            str(canonicalize_name(egg)) if egg else None,
            "",
            extras,
            None,
            url,
            local or _file_path(url),
            editable=True,
        )
    for scheme in ("bzr", "git", "hg", "svn"):
        if text.lower().startswith(f"{scheme}:"):
            text = f"{scheme}+{text}"
            break
    egg = _egg(text)
    _check_editable_link(text, text, named=egg is not None)
    return ParsedRequirement(str(canonicalize_name(egg)) if egg else None, "", (), None, text, editable=True)


def _check_editable_link(text: str, url: str, *, named: bool) -> None:
    scheme = _scheme(url)
    if scheme not in VCS_SCHEMES and scheme != "file":
        raise NotARequirement(
            f"{text} is not a valid editable requirement: it should be a path to a local project or a VCS URL"
        )
    if not named and scheme != "file":
        raise NotARequirement(f"cannot tell the name of {text!r}: pip needs 'NAME @ URL' or #egg=NAME")


def _egg(url: str) -> str | None:
    match = _EGG.search(url)
    if match is None:
        return None
    if not _PROJECT_NAME.match(match[1]):
        raise NotARequirement(f"the #egg= fragment {match[1]!r} is not a project name")
    return match[1]


def _scheme(url: str) -> str:
    try:
        return urlsplit(url).scheme.lower()
    except ValueError:
        return ""


def _filename(url: str) -> str:
    try:
        path = urlsplit(url).path
    except ValueError:
        return ""
    return unquote(path.rstrip("/").rsplit("/", 1)[-1])


def _file_path(url: str) -> Path | None:
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() != "file":
        return None
    return Path(os.path.normpath(unquote(parts.path))) if parts.path else None


def _pep508_url(text: str) -> bool:
    """``name @ ./x.whl``: pip takes it as a PEP 508 URL requirement, not as a file name."""
    head, at, _ = text.partition("@")
    return bool(at) and not looks_like_path(head)


def _absolute(base: Path, text: str) -> str:
    return os.path.normpath(os.path.join(base, text))


def _strip_extras(text: str) -> tuple[str, tuple[str, ...]]:
    match = _EXTRAS.match(text)
    if match is None:
        return text, ()
    try:
        extras = Requirement("placeholder" + match[2]).extras
    except InvalidRequirement:
        raise NotARequirement(f"invalid extras {match[2]!r}") from None
    return match[1].rstrip(), tuple(sorted(extras))


def _installable(path: str) -> bool:
    return any(os.path.isfile(os.path.join(path, name)) for name in ("pyproject.toml", "setup.py"))
