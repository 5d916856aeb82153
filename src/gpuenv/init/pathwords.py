"""What the words of a file's path say it is for: ``docs/environment.yml`` serves the docs,
``requirements-dev.txt`` development, ``requirements_win.txt`` another platform."""

from __future__ import annotations

import re

#: A role, and the words of a path (its folders' and its name's) that say it.
ROLE_WORDS = (
    ("dev", r"dev|develop|development|lint|linting|style|format|precommit|pre-commit|typing|mypy|ci"),
    ("test", r"tests?|testing|pytest|unittest"),
    ("docs", r"docs?|documentation|sphinx|mkdocs|readthedocs|rtd"),
    ("demo", r"demos?|gradio|streamlit|app|apps|examples?|notebooks?|colab|webui|ui|playground"),
    ("lock", r"lock|locked|frozen|freeze|pinned|pins|snapshot"),
    (
        "other-platform",
        r"win|windows|win32|win64|mac|macos|osx|darwin|mps|rocm\d*|amd|ipex|xpu|intel|arm64|"
        r"aarch64|cpu|apple|m1|m2|npu|ascend|tpu|jetson",
    ),
)

CUDA_WORD = re.compile(r"(?i)(^|[-_.])(cu\d{2,3}|cuda\d*)([-_.]|$)")


def words(rel: str) -> list[str]:
    """The words of a path: requirements/requirements-pllava.txt → requirements, requirements, pllava."""
    stem = rel.rsplit(".", 1)[0]
    return [w for w in re.split(r"[-_./\\ ]+", stem.lower()) if w]


def role_by_words(rel: str, roles: tuple[str, ...] | None = None) -> tuple[str, str] | None:
    """(role, "name" or "folder") where a word of the path says what the file is for (docs/…,
    requirements-dev.txt, demo/environment.yml); ``roles`` limits the roles looked for."""
    name_words = words(rel.split("/")[-1])
    all_words = words(rel)
    for role, pattern in ROLE_WORDS:
        if roles is not None and role not in roles:
            continue
        if any(re.fullmatch(pattern, w) for w in all_words):
            if role == "other-platform" and CUDA_WORD.search(rel):
                continue
            return role, "name" if any(re.fullmatch(pattern, w) for w in name_words) else "folder"
    return None
