"""pip's configuration, read from its files as pip reads them, and the package sources it names.

uv does not read pip's configuration, so ``--installer uv`` (and ``gpuenv
export uv``) pass pip's sources to it explicitly. :func:`pip_config` finds the
same items ``pip config list`` prints (``section.key`` → value: the files in
pip's order of precedence, then the ``PIP_*`` variables as ``:env:``) without
starting pip, which costs an interpreter and pip's imports on every setup.
:func:`pip_sources` then takes what ``pip install`` would use from them.
"""

from __future__ import annotations

import ast
import configparser
import locale
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gpuenv.errors import InputError
from gpuenv.inputs import UnreadableInput, read_input

_BASENAME = "pip.ini" if sys.platform == "win32" else "pip.conf"

#: pip's configuration sections, lowest precedence first, as ``pip install`` reads them.
_SECTIONS = ("global", "install", ":env:")
_MULTI = ("extra-index-url", "find-links", "constraint")
_KEYS = ("index-url", "no-index", "cert", *_MULTI)


@dataclass(frozen=True)
class PipSources:
    """Where pip's configuration says packages come from."""

    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    #: Constraint files.
    constraints: tuple[str, ...] = ()
    no_index: bool = False
    #: A CA bundle (pip's ``cert``); uv reads one from SSL_CERT_FILE.
    cert: str | None = None


def config_files(prefix: Path, environ: Mapping[str, str]) -> list[Path]:
    """pip's configuration files, lowest precedence first (pip's ``configuration.py``).

    Global (site-wide), then the user's (skipped when ``PIP_CONFIG_FILE``
    names a file that exists), then the one of the interpreter's ``prefix``,
    then ``PIP_CONFIG_FILE``. None at all when ``PIP_CONFIG_FILE`` is the null
    device.
    """
    named = environ.get("PIP_CONFIG_FILE")
    if named == os.devnull:
        return []
    home = Path(environ.get("HOME") or os.path.expanduser("~"))
    if sys.platform == "win32":
        site_dirs = [Path(environ.get("PROGRAMDATA", r"C:\ProgramData")) / "pip"]
        user_dir = Path(environ.get("APPDATA", str(home / "AppData" / "Roaming"))) / "pip"
        legacy = home / "pip" / _BASENAME
    elif sys.platform == "darwin":
        site_dirs = [Path("/Library/Application Support/pip")]
        user_dir = home / "Library" / "Application Support" / "pip"
        user_dir = user_dir if user_dir.is_dir() else home / ".config" / "pip"
        legacy = home / ".pip" / _BASENAME
    else:
        xdg_dirs = environ.get("XDG_CONFIG_DIRS", "").strip() or "/etc/xdg"
        site_dirs = [Path(os.path.expanduser(d.rstrip(os.sep))) / "pip" for d in xdg_dirs.split(os.pathsep)]
        site_dirs.append(Path("/etc"))
        user_dir = Path(environ.get("XDG_CONFIG_HOME", "").strip() or home / ".config") / "pip"
        legacy = home / ".pip" / _BASENAME
    files = [d / _BASENAME for d in site_dirs]
    if not (named and Path(named).exists()):
        files += [legacy, user_dir / _BASENAME]
    files.append(prefix / _BASENAME)
    if named:
        files.append(Path(named))
    return files


def pip_config(prefix: Path | None = None, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """What ``pip config list`` prints for the pip of the interpreter at ``prefix``, as a dict.

    ``prefix`` defaults to this interpreter's (``sys.prefix``): pip reads the
    ``pip.conf`` there too. A file pip could not parse is an error here too.
    """
    environ = os.environ if environ is None else environ
    items: dict[str, str] = {}
    for path in config_files(Path(sys.prefix) if prefix is None else prefix, environ):
        # ConfigParser.read, which pip uses, skips a file it cannot open.
        if not (path.is_file() and os.access(path, os.R_OK)):
            continue
        parser = configparser.RawConfigParser()
        try:
            text = read_input(path, encoding=locale.getpreferredencoding(False), universal_newlines=True)
            parser.read_string(text, source=str(path))
        except (UnreadableInput, configparser.Error) as exc:
            raise InputError(f"pip's configuration file {path} cannot be read: {exc}",
                             hint="pip refuses it too ('pip config list'): fix or remove it") from None
        for section in parser.sections():
            for name, value in parser.items(section):
                items[f"{section}.{_normalize(name)}"] = value
    for key, value in environ.items():
        if key.startswith("PIP_") and key[4:].lower() not in ("version", "help"):
            items[f":env:.{_normalize(key[4:])}"] = value
    return items


def _normalize(name: str) -> str:
    name = name.lower().replace("_", "-")
    return name[2:] if name.startswith("--") else name


def parse_config_list(text: str) -> dict[str, str]:
    """The items of ``pip config list`` output (``section.key='value'`` lines)."""
    items: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, raw = line.partition("=")
        if not sep or "." not in name:
            continue
        try:
            value = ast.literal_eval(raw.strip())
        except (ValueError, SyntaxError):
            value = raw.strip()
        items[name.strip()] = str(value)
    return items


def pip_sources(items: Mapping[str, str]) -> PipSources:
    """The sources ``pip install`` takes from its configuration: ``[install]`` over ``[global]``,
    the ``PIP_*`` variables (``:env:``) over both."""
    options: dict[str, str] = {}
    for section in _SECTIONS:
        for key in _KEYS:
            value = items.get(f"{section}.{key}")
            if value is not None:
                options[key] = value
    return PipSources(
        index_url=options.get("index-url") or None,
        extra_index_urls=tuple(options.get("extra-index-url", "").split()),
        find_links=tuple(options.get("find-links", "").split()),
        constraints=tuple(options.get("constraint", "").split()),
        no_index=options.get("no-index", "").strip().lower() in ("1", "true", "yes", "on", "y", "t"),
        cert=options.get("cert") or None,
    )
