"""The checks every value of a recipe goes through, whichever table it is in.

:class:`Where` is the file and table prefix an error names; the readers below
take a TOML value and return it typed (a table, a string, a boolean, an array
of strings, a PEP 508 requirement, a path relative to the recipe) or raise a
:class:`~gpuenv.errors.RecipeError` that names the key, what was found, and
what to write instead.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from gpuenv.errors import RecipeError

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_NAME_THEN_SINGLE_EQUALS = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*=\s*(\d[^=<>!~;]*)")


@dataclass(frozen=True)
class Where:
    """The file and the table prefix every error names."""

    path: Path
    prefix: str

    def error(self, key: str, problem: str, *, suggestion: str | None = None) -> RecipeError:
        return RecipeError(self.path, self.prefix + key, problem, suggestion=suggestion)

    def header(self, key: str) -> str:
        return f"[{self.prefix}{key}]"


def child_key(key: str, name: str) -> str:
    """The key path of ``name`` inside ``key``, quoted the way TOML would need it."""
    part = name if _BARE_KEY.fullmatch(name) else '"' + name.replace('"', '\\"') + '"'
    return f"{key}.{part}" if key else part


def leaf_key(key: str) -> str:
    return key.rsplit(".", 1)[-1]


def describe(value: object) -> str:
    # bool before int: True is an int to Python but a boolean to whoever wrote the TOML.
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return "a date/time"


def _quote_advice(key: str, value: object) -> str:
    """How to turn an unquoted TOML value into the string that was meant."""
    if isinstance(value, bool):
        return f'; quote the value the build expects, e.g. {leaf_key(key)} = "1" or "TRUE"'
    if isinstance(value, int):
        return f'; quote it: {leaf_key(key)} = "{value}"'
    if isinstance(value, float):
        # The float has already lost what was written (2.10 reads as 2.1), so show no digits.
        return f'; quote it: {leaf_key(key)} = "..."'
    return ""


def as_table(where: Where, key: str, value: object) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise where.error(key, f"expected a table, got {describe(value)}")
    return value


#: Longer than any requirement, URL or knob; short enough that no version in it overflows int().
_MAX_STRING = 4096


def as_string(where: Where, key: str, value: object) -> str:
    if not isinstance(value, str):
        raise where.error(key, f"expected a string, got {describe(value)}{_quote_advice(key, value)}")
    if "\0" in value:  # no command line or environment can carry it
        raise where.error(key, "contains a NUL character")
    if len(value) > _MAX_STRING:
        raise where.error(key, f"longer than {_MAX_STRING} characters")
    return value


def as_boolean(where: Where, key: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    advice = ""
    if isinstance(value, str) and value.lower() in ("true", "false"):
        advice = f"; write {leaf_key(key)} = {value.lower()} without quotes"
    raise where.error(key, f"expected a boolean (true or false), got {describe(value)}{advice}")


def as_strings(where: Where, key: str, value: object) -> list[str]:
    if isinstance(value, str):
        advice = f'; write {leaf_key(key)} = ["{value}"]'
        raise where.error(key, f"expected an array of strings, got a string{advice}")
    if not isinstance(value, list):
        raise where.error(key, f"expected an array of strings, got {describe(value)}")
    return [as_string(where, f"{key}[{i}]", item) for i, item in enumerate(value)]


def check_keys(where: Where, key: str, table: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    for name in table:
        if name not in allowed:
            match = difflib.get_close_matches(name, allowed, n=1)
            problem = "unknown key" if match else f"unknown key (valid keys: {', '.join(sorted(allowed))})"
            raise where.error(child_key(key, name), problem, suggestion=match[0] if match else None)


def as_requirement(where: Where, key: str, text: str) -> Requirement:
    try:
        return Requirement(text)
    except InvalidRequirement as exc:
        # packaging's message continues with the text and a caret: the first line is the problem.
        reason = str(exc).splitlines()[0] if str(exc) else "cannot be parsed"
        single = _NAME_THEN_SINGLE_EQUALS.fullmatch(text.strip())
        raise where.error(
            key,
            f"{text!r} is not a valid PEP 508 requirement: {reason}",
            suggestion=f"{single[1]}=={single[2].strip()}" if single else None,
        ) from None


def as_requirements(where: Where, key: str, value: object, why_not_torch: str) -> tuple[str, ...]:
    """A list of PEP 508 requirements; none may be torch, which only [torch] installs."""
    texts = as_strings(where, key, value)
    for i, text in enumerate(texts):
        if canonicalize_name(as_requirement(where, f"{key}[{i}]", text).name) == "torch":
            raise where.error(f"{key}[{i}]", why_not_torch)
    return tuple(text.strip() for text in texts)


def local_path(where: Where, key: str, text: str, path: Path, *, directory_only: bool) -> Path:
    # Relative paths belong to the recipe, not to wherever gpuenv happens to run.
    # realpath, not Path.resolve: on a link loop it gives the path back (that does not exist, and
    # is said so) where resolve raises RuntimeError before Python 3.13.
    resolved = Path(os.path.realpath(where.path.parent / path))
    if not resolved.exists():
        what = ("is a link that loops or leads nowhere" if os.path.islink(where.path.parent / path)
                else "does not exist")
        raise where.error(key, f"{text!r} {what} (looked for {resolved})")
    if directory_only and not resolved.is_dir():
        raise where.error(
            key,
            f"{text!r} is not a directory; a path must be a source tree ('NAME @ file://…' takes archives)",
        )
    return resolved


def home_path(text: str, what: str) -> Path:
    """``text`` as a path with ``~`` / ``~user`` expanded; InputError naming ``what`` when the home
    directory it names does not exist on this machine (``~nosuchuser/cache``) or it holds a NUL byte."""
    from gpuenv.errors import InputError

    if "\0" in text:
        raise InputError(f"{what}: {text!r} holds a NUL byte: not a path", hint="correct the path")
    try:
        return Path(text).expanduser()
    except RuntimeError:
        user = text.split("/", 1)[0]
        raise InputError(f"{what}: {text!r}: this machine has no home directory for {user}",
                         hint="write the path without ~, or with the home of a user of this machine",
                         ) from None
