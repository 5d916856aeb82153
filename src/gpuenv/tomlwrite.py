"""TOML text for the files gpuenv writes (gpuenv.lock, uv's tables, pylock.toml): values and keys.

tomllib reads TOML but the standard library writes none; these two functions
are all the writers need, and every writer uses them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping


def toml_value(value: object) -> str:
    """A TOML value: strings are JSON-quoted (valid TOML basic strings), lists inline."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        pairs = ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items())
        return "{ " + pairs + " }" if value else "{}"
    return json.dumps("" if value is None else str(value), ensure_ascii=False)


def toml_key(key: str) -> str:
    """A TOML key: bare where TOML allows it, else quoted."""
    bare = key.replace("-", "").replace("_", "").isalnum()
    return key if bare else json.dumps(key)
