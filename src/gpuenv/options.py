"""Every option of gpuenv, declared once: its flags, environment variable, recipe key, default and help.

:data:`OPTIONS` feeds the command's parser (:mod:`gpuenv.cli_parser`), the
invoke tasks and nox sessions (:mod:`gpuenv.integrations`), the library's
keyword arguments (:class:`gpuenv.api.Project`) and every read of an
environment variable that stands for an option. :func:`choose` is the one
place that decides which value wins: the command line (or a keyword argument),
then the environment, then the recipe, then the default.

Commands name the options they take (``gpuenv.cli.COMMANDS``); an option is
spelled the same, with the same help, wherever it appears. This module imports
only the ground below it.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from gpuenv.errors import InputError
from gpuenv.outputs import path_argument
from gpuenv.progress import COLOR_CHOICES, QUIET, VERBOSE

#: How an option is given: ``value`` (--x VALUE; with ``const``, --x alone gives it), ``flag``
#: (--x), ``off`` (--no-x: False; unset is None), ``list`` (--x VALUE, repeatable), ``level``
#: (-v/-q: ``const`` into ``dest``), ``positional`` (VALUE), ``optional-positional`` ([VALUE]).
Kind = Literal["value", "flag", "off", "list", "level", "positional", "optional-positional"]
#: Where a chosen value came from.
Source = Literal["given", "environment", "recipe", "default"]


def text_value(text: str) -> str:
    """A value that must say something: "" (or blanks) would be silently taken as "not given"."""
    if not text.strip() or "\0" in text:
        raise argparse.ArgumentTypeError(f"{text!r} is not a value: give one, or leave the option out")
    return text


def days(text: str) -> float:
    """A number of days, in ASCII digits (float() reads Arabic-Indic and full-width digits too)."""
    if not text.isascii():
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days")
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days") from None


def truthy(text: str) -> bool:
    """An environment variable that switches something on: 1, true, yes or on (any case)."""
    return text.strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Option:
    """One option of gpuenv, as every front end and the library see it."""

    #: The keyword name: argparse's dest, the invoke task's parameter, ``Project(name=...)``.
    name: str
    #: Its flags (the longest is the invoke task's); none for a positional.
    flags: tuple[str, ...]
    help: str
    kind: Kind = "value"
    metavar: str | None = None
    #: The converter of a value given on the command line (raises argparse.ArgumentTypeError).
    type: Callable[[str], Any] | None = None
    choices: tuple[str, ...] | None = None
    default: Any = None
    #: ``value``: what the flag alone gives (--write); ``level``: the value it stores.
    const: Any = None
    #: Where ``level`` options store (verbosity); else :attr:`name`.
    dest: str | None = None
    #: The environment variable that stands for it when it is not given.
    env: str | None = None
    #: A path: an environment value has ``~`` expanded (the shell does it for a flag).
    path: bool = False
    #: The recipe key it overrides ("torch.cuda"), and how to read that key from a loaded recipe.
    recipe_key: str | None = None
    recipe_value: Callable[[Any], Any] | None = None
    #: The heading it is listed under in --help.
    group: str | None = None
    #: Passed on by the invoke tasks and nox sessions (False: only the command has it).
    forwarded: bool = True

    @property
    def flag(self) -> str | None:
        """The long flag (the one messages quote), or None for a positional."""
        return max(self.flags, key=len) if self.flags else None

    @property
    def task_name(self) -> str:
        """The invoke task's parameter: the name, or for flags sharing a dest (-v/-q) the flag's."""
        if self.kind == "level" and self.flag:
            return self.flag.lstrip("-").replace("-", "_")
        return self.name

    def is_given(self, value: Any) -> bool:
        """Whether ``value`` was given: a flag passed, a list with items, any value but None ("" is given,
        and refused where it is checked, as a mistake rather than "not given")."""
        if self.kind in ("flag", "level"):
            return bool(value)
        if self.kind == "list":
            return value not in (None, (), [])
        return value is not None

    def from_environ(self, environ: Mapping[str, str]) -> tuple[Any, str] | None:
        """(value, raw text) of its environment variable, or None when unset or blank."""
        raw = environ.get(self.env or "", "") if self.env else ""
        if not raw.strip():
            return None
        if self.kind == "flag":
            return (True, raw) if truthy(raw) else None
        if self.kind == "list":
            return tuple(raw.split()), raw
        if self.path:
            try:
                return Path(raw).expanduser(), raw
            except RuntimeError:  # ~someone for a user this machine does not have
                raise InputError(f"{self.env}={raw}: no such user's home here",
                                 hint="set it to a path that exists on this machine") from None
        return raw, raw


@dataclass(frozen=True)
class Chosen:
    """A value and where it came from (``by``): "--cuda 12.1", "GPUENV_TOOLKIT=system",
    'cuda = "cu121" in llm.toml'."""

    value: Any
    source: Source
    by: str


_HARDWARE = "hardware (default: probe this machine)"
_RELEASES = "torch releases (default: gpuenv's data and what the indexes say, cached for a day)"
_SHARED = "shared caches and prebuilt wheels"
_OUTPUT = "output"

_OPTIONS = (
    # -- the recipe and the machine it is planned for
    Option("recipe", ("-r", "--recipe"), "recipe file or pyproject.toml (default: envs/default.toml, else "
           "pyproject.toml's [tool.gpuenv]); doctor checks its extensions and lock", type=path_argument),
    Option("hardware", ("--hardware",), "plan for (or check against) a 'gpuenv probe --json' file taken "
           "elsewhere", metavar="FILE", type=path_argument, group=_HARDWARE),
    Option("gpu", ("--gpu",), "these GPUs instead of the probed ones (H100, A100, L4, 8xH100…)",
           metavar="NAME[,NAME]", group=_HARDWARE),
    Option("arch", ("--arch",), "these compute capabilities instead of the probed GPUs",
           metavar="X.Y[,X.Y]", group=_HARDWARE),
    Option("cuda", ("--cuda",), "force the torch variant: 12.1, cu121 or cpu; auto lets gpuenv choose "
           "(default: the recipe's, else auto)", metavar="VERSION", recipe_key="torch.cuda",
           recipe_value=lambda r: r.torch.cuda),
    Option("torch_index", ("--torch-index",), "index URL template for torch, {variant} is replaced (e.g. a "
           "mirror); 'config' uses the installer's own configuration", metavar="TEMPLATE",
           env="GPUENV_TORCH_INDEX", recipe_key="torch.index", recipe_value=lambda r: r.torch.index),
    Option("toolkit", ("--toolkit",), "where nvcc comes from: auto (a matching toolkit on disk, else CUDA "
           "13.x from PyPI into the toolkit cache), system (never download), pypi, or a toolkit root "
           "(default: the recipe's torch.toolkit, else auto)", metavar="auto|system|pypi|PATH",
           env="GPUENV_TOOLKIT", recipe_key="torch.toolkit", recipe_value=lambda r: r.torch.toolkit),
    # -- caches
    Option("cache_dir", ("--cache-dir",), "the wheel cache (default: ~/.cache/gpuenv/wheels); a shared "
           "directory works for a whole cluster", type=path_argument, env="GPUENV_CACHE_DIR", path=True),
    Option("no_cache", ("--no-cache",), "neither use nor fill the wheel cache", kind="flag"),
    Option("offline", ("--offline",), "ask no index: plan from the data this gpuenv shipped with",
           kind="flag", env="GPUENV_OFFLINE", group=_RELEASES),
    Option("refresh", ("--refresh",), "read the torch releases from the indexes now, whatever the cache "
           "holds", kind="flag", group=_RELEASES),
    Option("cache_from", ("--cache-from",), "a shared cache to ask before building: an index (pypiserver: "
           "http://host:8080/simple/, devpi: http://host/USER/INDEX/+simple/), a find-links page or a "
           "folder; repeatable (the variable: space-separated; default: the recipe's [cache] from)",
           kind="list", metavar="URL", env="GPUENV_CACHE_FROM", recipe_key="cache.from",
           recipe_value=lambda r: r.cache.sources, group=_SHARED),
    Option("push", ("--push",), "push the wheels this setup builds to the shared caches (default: the "
           "recipe's [cache] push)", kind="flag", recipe_key="cache.push",
           recipe_value=lambda r: r.cache.push, group=_SHARED),
    Option("prebuilt", ("--no-prebuilt",), "never use a publisher's prebuilt wheel, even one that passes "
           "the audit (default: the recipe's [cache] prebuilt)", kind="off", recipe_key="cache.prebuilt",
           recipe_value=lambda r: r.cache.prebuilt, group=_SHARED),
    # -- the env
    Option("venv", ("--venv",), "the env (default: .venv): setup creates or reuses it, and adopts one it "
           "did not create (a conda env, another tool's venv), keeping its torch; plan plans for its "
           "torch; doctor and export pylock read it", type=path_argument),
    Option("python", ("--python",), "the interpreter of an env gpuenv did not create (a container's "
           "system Python, a conda env's bin/python): its torch is used as it is, never replaced",
           metavar="PATH", type=path_argument),
    Option("break_system_packages", ("--break-system-packages",), "install into a Python its distribution "
           "manages (PEP 668): passed on to pip and uv, whose own override it is", kind="flag"),
    Option("installer", ("--installer",), "what makes the target env and installs into it: uv, or pip; "
           "auto (default): uv if gpuenv's uv extra or a uv on PATH has it, else pip",
           choices=("auto", "pip", "uv"), default="auto"),
    Option("work_dir", ("--work-dir",), "where build logs, sources and wheels go (default: VENV/.gpuenv)",
           type=path_argument),
    Option("locked", ("--locked",), "rebuild exactly what gpuenv.lock (next to the recipe) records",
           kind="flag"),
    Option("dry_run", ("--dry-run",), "say what it would do (setup: the commands, in order; cache prune: "
           "what it would remove) and change nothing", kind="flag"),
    # -- what a command prints
    Option("json", ("--json",), "print it as JSON (README: \"JSON output\")", kind="flag"),
    Option("write", ("--write",), "merge them into this pyproject.toml (default: ./pyproject.toml) instead "
           "of printing them", metavar="PYPROJECT", type=path_argument, const=Path("pyproject.toml")),
    Option("output", ("-o", "--output"), "write it here (e.g. pylock.toml) instead of printing it",
           type=path_argument),
    # -- init
    Option("pyproject", ("--pyproject",), "put the recipe in pyproject.toml's [tool.gpuenv] instead of "
           "envs/default.toml", kind="flag"),
    Option("torch", ("--torch",), "torch version or specifier (default: the repository's pin, else >=2.1)",
           metavar="VERSION", type=text_value),
    Option("extension", ("--extension",), "an extension to build without isolation (repeatable)",
           kind="list", metavar="REQ", type=text_value),
    Option("name", ("--name",), "the environment's name", type=text_value),
    # -- cache
    Option("older_than", ("--older-than",), "built more than DAYS ago", metavar="DAYS", type=days),
    Option("unused_since", ("--unused-since",), "not used since this date", metavar="YYYY-MM-DD"),
    Option("max_size", ("--max-size",), "keep the cache under SIZE (e.g. 20G, 500M): least recently used "
           "go first", metavar="SIZE"),
    # -- positionals
    Option("substring", (), "list only the names that contain it (ignoring case, spaces and dashes)",
           kind="optional-positional", metavar="SUBSTRING", default=""),
    Option("directory", (), "where the group directories go", kind="positional", metavar="DIR",
           type=path_argument),
    Option("target", (), "an index that takes uploads (pypiserver: http://host:8080/simple/, devpi: "
           "http://host/USER/INDEX/+simple/; credentials as https://USER:TOKEN@host/ or in ~/.netrc) or a "
           "folder", kind="positional", metavar="URL"),
    Option("shell", (), "the shell to complete in", kind="positional", choices=("bash", "zsh", "fish"),
           forwarded=False),
    # -- output, on every command (gpuenv -q setup = gpuenv setup -q)
    Option("verbose", ("-v", "--verbose"), "also stream the installers' and compilers' output",
           kind="level", const=VERBOSE, dest="verbosity", group=_OUTPUT),
    Option("quiet", ("-q", "--quiet"), "print only errors and the final line", kind="level", const=QUIET,
           dest="verbosity", group=_OUTPUT),
    Option("color", ("--color",), "colour: auto (default: on a terminal, unless NO_COLOR is set), always, "
           "never", metavar="WHEN", choices=COLOR_CHOICES, default="auto", group=_OUTPUT),
)

#: Every option by its name.
OPTIONS: dict[str, Option] = {o.name: o for o in _OPTIONS}
#: The options every command takes (and the main parser: ``gpuenv -q setup``).
OUTPUT_OPTIONS = ("verbose", "quiet", "color")


def option(name: str) -> Option:
    return OPTIONS[name]


def choose(
    name: str, given: Any = None, *, environ: Mapping[str, str] | None = None, recipe: Any = None
) -> Chosen | None:
    """The value option ``name`` takes: ``given`` (the command line, a keyword argument), else its
    environment variable in ``environ``, else the recipe's key, else its default; None when none says.

    The one place this order is decided: the library (which passes what the user gave and the
    environment) and the planner (which passes what the library gave and the recipe) both ask here.
    """
    spec = OPTIONS[name]
    if spec.is_given(given):
        return Chosen(given, "given", _given_text(spec, given))
    if environ is not None and spec.env:
        found = spec.from_environ(environ)
        if found is not None:
            return Chosen(found[0], "environment", f"{spec.env}={found[1]}")
    if recipe is not None and spec.recipe_value is not None and spec.recipe_key is not None:
        value = spec.recipe_value(recipe)
        where = Path(getattr(recipe, "path", "the recipe")).name
        shown = json.dumps(list(value) if isinstance(value, tuple) else value)
        return Chosen(value, "recipe", f"{spec.recipe_key.split('.')[-1]} = {shown} in {where}")
    if spec.default is not None:
        return Chosen(spec.default, "default", "default")
    return None


def chosen_value(name: str, given: Any = None, *, environ: Mapping[str, str] | None = None,
                 recipe: Any = None) -> Any:
    """:func:`choose`'s value, or None."""
    found = choose(name, given, environ=environ, recipe=recipe)
    return None if found is None else found.value


def _given_text(spec: Option, value: Any) -> str:
    if spec.kind in ("flag", "off", "level") or spec.flag is None:
        return spec.flag or spec.name
    if spec.kind == "list":
        return " ".join(f"{spec.flag} {item}" for item in value)
    return f"{spec.flag} {value}"
