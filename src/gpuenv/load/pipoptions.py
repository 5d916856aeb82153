"""The options of a requirements-file line, parsed as pip's optparse parser parses them.

pip builds an ``optparse`` parser of these options for each line
(pip/_internal/req/req_file.py ``build_parser``, pip 26.3): long options may
be abbreviated to any unique prefix (``--extra`` is ``--extra-index-url``),
values follow ``=`` or come as the next word, short options take their value
attached (``-rbase.txt``) or next, words that are not options are ignored, and
an unknown option, a missing value or a bad ``--hash`` / ``--config-settings``
fails the whole file. :func:`parse_options` does the same, without optparse's
per-line parser, and raises :class:`OptionError` with pip's reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Long option → (destination, takes a value). Every option of pip 26.3's requirements-file parser.
LONG_OPTIONS: dict[str, tuple[str, bool]] = {
    "--index-url": ("index_url", True),
    "--pypi-url": ("index_url", True),
    "--extra-index-url": ("extra_index_urls", True),
    "--no-index": ("no_index", False),
    "--constraint": ("constraints", True),
    "--requirement": ("requirements", True),
    "--editable": ("editables", True),
    "--find-links": ("find_links", True),
    "--no-binary": ("no_binary", True),
    "--only-binary": ("only_binary", True),
    "--prefer-binary": ("prefer_binary", False),
    "--require-hashes": ("require_hashes", False),
    "--no-require-hashes": ("no_require_hashes", False),
    "--pre": ("pre", False),
    "--all-releases": ("all_releases", True),
    "--only-final": ("only_final", True),
    "--trusted-host": ("trusted_hosts", True),
    "--use-feature": ("features_enabled", True),
    "--hash": ("hashes", True),
    "--config-settings": ("config_settings", True),
}
SHORT_OPTIONS = {
    "-i": "--index-url",
    "-c": "--constraint",
    "-r": "--requirement",
    "-e": "--editable",
    "-f": "--find-links",
    "-C": "--config-settings",
}
#: pip 26.3's --use-feature choices.
FEATURES = (
    "fast-deps",
    "inprocess-build-deps",
    "venv-isolation",
    "truststore",
    "no-binary-enable-wheel-cache",
    "build-constraint",
)
#: pip/_internal/utils/hashes.py STRONG_HASHES.
STRONG_HASHES = ("sha256", "sha384", "sha512")
#: Options older pips took that pip 26.3 refuses, with what happened to them.
REMOVED = {
    "--global-option": "pip 25.3 removed --global-option from requirements files",
    "--install-option": "pip 23.1 removed --install-option",
}


class OptionError(ValueError):
    """Why pip refuses a line's options."""


@dataclass
class Options:
    index_url: str | None = None
    extra_index_urls: list[str] = field(default_factory=list)
    no_index: bool = False
    constraints: list[str] = field(default_factory=list)
    requirements: list[str] = field(default_factory=list)
    editables: list[str] = field(default_factory=list)
    find_links: list[str] = field(default_factory=list)
    hashes: list[str] = field(default_factory=list)
    config_settings: list[tuple[str, str]] = field(default_factory=list)
    #: The other file options, as written back: ("--pre", ""), ("--trusted-host", "host").
    flags: list[tuple[str, str]] = field(default_factory=list)

    def file_options(self, *, editable: bool) -> list[str]:
        """The options of a requirement line that pip parses and ignores there."""
        ignored = [f"--index-url {self.index_url}"] if self.index_url else []
        ignored += [f"--extra-index-url {u}" for u in self.extra_index_urls]
        ignored += ["--no-index"] if self.no_index else []
        ignored += [f"-r {r}" for r in self.requirements] + [f"-c {c}" for c in self.constraints]
        ignored += [f"-f {f}" for f in self.find_links]
        ignored += [f"{flag} {value}".strip() for flag, value in self.flags]
        if editable:
            ignored += [f"-e {e}" for e in self.editables[1:]]
            ignored += [f"--hash {h}" for h in self.hashes]
        else:
            ignored += [f"-e {e}" for e in self.editables]
        return ignored


def parse_options(words: list[str]) -> Options:
    """The options among ``words`` (shlex-split), as pip's parser reads them; OptionError as pip fails."""
    opts = Options()
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if word == "--":
            break
        if word.startswith("--"):
            name, has_value, attached = word.partition("=")
            option = _long(name)
            dest, takes_value = LONG_OPTIONS[option]
            if not takes_value:
                if has_value:
                    raise OptionError(f"{option} option does not take a value")
                _flag(opts, option, dest)
                continue
            if has_value:
                value = attached
            elif i < len(words):
                value, i = words[i], i + 1
            else:
                raise OptionError(f"{option} option requires 1 argument")
            _store(opts, option, dest, value)
        elif word.startswith("-") and word != "-":
            short = word[:2]
            if short not in SHORT_OPTIONS:
                raise OptionError(f"no such option: {short}")
            option = SHORT_OPTIONS[short]
            if len(word) > 2:
                value = word[2:]
            elif i < len(words):
                value, i = words[i], i + 1
            else:
                raise OptionError(f"{short} option requires 1 argument")
            _store(opts, short, LONG_OPTIONS[option][0], value)
        # Other words: optparse leaves them over, and pip ignores them.
    return opts


def _long(name: str) -> str:
    if name in LONG_OPTIONS:
        return name
    if name in REMOVED:
        raise OptionError(f"no such option: {name} ({REMOVED[name]})")
    matches = [option for option in LONG_OPTIONS if option.startswith(name)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise OptionError(f"no such option: {name}")
    raise OptionError(f"ambiguous option: {name} ({', '.join(sorted(matches))}?)")


def _flag(opts: Options, option: str, dest: str) -> None:
    if dest == "no_index":
        opts.no_index = True
    else:
        opts.flags.append((option, ""))


def _store(opts: Options, option: str, dest: str, value: str) -> None:
    if dest == "index_url":
        opts.index_url = value
    elif dest in ("extra_index_urls", "constraints", "requirements", "editables", "find_links"):
        getattr(opts, dest).append(value)
    elif dest == "hashes":
        algorithm, colon, digest = value.partition(":")
        if not colon:
            raise OptionError(
                f"Arguments to {option} must be a hash name followed by a value, like --hash=sha256:abcde..."
            )
        if algorithm not in STRONG_HASHES:
            raise OptionError(f"Allowed hash algorithms for {option} are {', '.join(STRONG_HASHES)}.")
        opts.hashes.append(f"{algorithm}:{digest}")
    elif dest == "config_settings":
        key, equals, setting = value.partition("=")
        if not equals:
            raise OptionError(f"Arguments to {option} must be of the form KEY=VAL")
        opts.config_settings.append((key, setting))
    elif dest == "features_enabled" and value not in FEATURES:
        choices = ", ".join(repr(f) for f in FEATURES)
        raise OptionError(f"option {option}: invalid choice: {value!r} (choose from {choices})")
    elif dest in ("no_binary", "only_binary") and value.startswith("-"):
        raise OptionError("--no-binary / --only-binary option requires 1 argument.")
    elif dest in ("all_releases", "only_final") and value.startswith("-"):
        raise OptionError("--all-releases / --only-final option requires 1 argument.")
    else:
        opts.flags.append((option, value))
