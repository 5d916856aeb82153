"""The one way gpuenv writes the files it is asked to write: a wheelhouse (``cache export``), init's
files, ``export uv --write``, ``export pylock -o``, gpuenv.lock.

Every such path is checked before anything is written (:func:`path_inside`): it must resolve inside
the folder the command was asked to write, so a link the folder holds that leads out of it, or
nowhere, is refused, as is a name from data (a cache key) that would climb out. An existing file
is replaced only if it is a regular file with a write bit. Each file is written whole or not at
all (:func:`write_atomic`: a temporary file in the same folder, renamed over the target), and
:func:`write_all` writes several all or nothing: if one fails, those already written are put back.
Whatever the file system refuses is an :class:`~gpuenv.errors.OutputError` naming the path.

The limit: the checks are made just before the writes, by this process. Another process that can
write the folder and swaps a folder for a link in between is not guarded against (nor could it be
without ``openat2``); a shared folder is only as safe as its permissions.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gpuenv.errors import OutputError

#: The suffix of the temporary files :func:`write_atomic` renames into place.
TEMP_SUFFIX = ".gpuenv-tmp"


def path_argument(text: str) -> Path:
    """A path given on the command line (``--venv``, ``-o``, ``--write``, ``cache export DIR``).

    ``""`` would be the current directory, which is never meant (``cache export ''`` would write
    into it); a NUL cannot be in a path.
    """
    if not text.strip() or "\0" in text:
        raise argparse.ArgumentTypeError(f"{text!r} is not a path")
    return Path(text)


def path_inside(root: Path | str, path: Path | str, *, folder: bool = False) -> Path:
    """Where ``path`` (relative to ``root``, or absolute) really is, checked to be a place gpuenv may
    write inside ``root``; raise :class:`OutputError` if it is not.

    Refused: a path that resolves outside ``root`` (through ``..`` or a link), a link that leads
    nowhere (dangling or in a loop), a folder or a device where a file goes, a file where a folder
    is needed. The path returned is the resolved one: write there, and a link inside ``root`` (a
    README.md that is a link to docs/README.md) keeps pointing at what was written. ``folder``: the
    path is a folder to fill (a wheelhouse group), so a folder there is fine and a file is not.
    """
    given = Path(root) / path
    if "\0" in str(given):
        raise OutputError(str(given).replace("\0", "\\0"), "a path cannot hold a NUL byte")
    top = Path(os.path.realpath(root))
    real = Path(os.path.realpath(given))
    if real != top and top not in real.parents:
        raise OutputError(given, f"leads out of {root} (to {real}): gpuenv writes only inside the folder "
                          "it was asked to write",
                          hint="if it is a link, replace it by a file (or remove it), then rerun")
    _check_folders(given, real.parent, top)
    for step in _steps(given, Path(root)):
        if (os.path.islink(step) or (step == given and os.path.lexists(real))) and not os.path.exists(step):
            raise OutputError(given, f"{'it' if step == given else step} is a link that leads nowhere "
                              "(dangling, or a loop)",
                              hint="remove the link or make it point at what exists, then rerun")
    if os.path.exists(real):
        mode = os.stat(real).st_mode
        if folder:
            if not stat.S_ISDIR(mode):
                raise OutputError(given, "is not a folder; a folder goes here", hint="move it aside")
        elif stat.S_ISDIR(mode):
            raise OutputError(given, "is a folder; a file goes here", hint="name a file, not a folder")
        elif not stat.S_ISREG(mode):
            raise OutputError(given, "is not a regular file (a device, FIFO or socket); gpuenv will not "
                              "replace it", hint="name a regular file")
    return real


def _steps(given: Path, root: Path) -> list[Path]:
    """The paths from the first name below ``root`` down to ``given``."""
    steps = []
    while given not in (root, given.parent):
        steps.append(given)
        given = given.parent
    return steps[::-1]


def _check_folders(given: Path, folder: Path, top: Path) -> None:
    """Each folder from ``folder`` up to ``top`` is a folder, or is missing (and will be made)."""
    while folder != top and top in folder.parents and not os.path.exists(folder):
        if os.path.lexists(folder):
            raise OutputError(given, f"{folder} is a link that leads nowhere (dangling, or a loop)",
                              hint="remove the link or make it point at a folder, then rerun")
        folder = folder.parent
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise OutputError(given, f"{folder} is a file, where a folder is needed",
                          hint="move the file aside, or choose another path")


def output_file(path: Path | str) -> Path:
    """``-o FILE`` / ``--write FILE``: ``path`` checked inside its own folder (see :func:`path_inside`),
    and replaceable (:func:`check_replaceable`); the resolved path."""
    given = Path(path)
    folder = given.parent
    if not os.path.isdir(folder):
        raise OutputError(given, f"its folder {folder} does not exist" if not os.path.lexists(folder)
                          else f"{folder} is not a folder", hint="create the folder first, or name another")
    real = path_inside(folder, given.name)
    check_replaceable(real, shown=given)
    return real


def check_replaceable(path: Path, *, shown: Path | None = None) -> None:
    """Raise :class:`OutputError` unless ``path`` can be written: a file that exists has a write bit
    (a file made read-only is left alone, even by root), and its folder, or the nearest one that
    exists, is writable."""
    shown = shown or path
    try:
        info = os.stat(path)
    except FileNotFoundError:
        info = None
    except OSError as exc:
        raise OutputError(shown, problem_of(exc)) from None
    if info is not None and (not info.st_mode & 0o222 or not os.access(path, os.W_OK)):
        raise OutputError(shown, "is read-only; gpuenv does not replace a file made read-only",
                          hint="make it writable (chmod u+w), or choose another path")
    folder = path.parent
    while not os.path.exists(folder) and folder != folder.parent:
        folder = folder.parent
    if not os.access(folder, os.W_OK):
        raise OutputError(shown, f"its folder {folder} is not writable",
                          hint="choose a path in a folder you can write")


def make_folders(folder: Path) -> list[Path]:
    """Create ``folder`` and the missing folders above it; the ones created, outermost first."""
    missing = []
    while not os.path.isdir(folder):
        missing.append(folder)
        folder = folder.parent
    for created in reversed(missing):
        try:
            os.mkdir(created)
        except OSError as exc:
            raise OutputError(created, problem_of(exc), hint=hint_of(exc)) from None
    return list(reversed(missing))


def write_atomic(path: Path, data: bytes, *, mode: int | None = None) -> None:
    """Replace (or create) the file ``path`` with ``data``, whole or not at all.

    Written to a temporary file in the same folder, fsynced, then renamed over ``path``: a reader
    sees the old content or the new, never a part; a crash leaves at most the temporary file.
    ``mode``: the permission bits (default: those of the file replaced, else what the umask gives).
    """
    temp = path.parent / f".{path.name[:100]}.{secrets.token_hex(4)}{TEMP_SUFFIX}"
    if mode is None:
        with contextlib.suppress(OSError):
            mode = stat.S_IMODE(os.stat(path).st_mode)
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
                if mode is not None:
                    os.fchmod(handle.fileno(), mode)
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
    except OSError as exc:
        raise OutputError(path, f"cannot write it: {problem_of(exc)}", hint=hint_of(exc)) from None
    _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):  # some file systems refuse fsync on a folder: the rename stands
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@dataclass(frozen=True)
class PlannedWrite:
    """One file of an all-or-nothing write: where (checked with :func:`path_inside`), what, and what
    it held before (None: it did not exist), to put back if a later write fails."""

    path: Path
    data: bytes
    previous: bytes | None = None


def write_all(writes: Sequence[PlannedWrite]) -> None:
    """Write every one of ``writes`` (each atomically, in order), or none.

    Each target is checked first (:func:`check_replaceable`); then, if a write fails, the files
    already written get their previous content back (or are removed), the folders made for them
    are removed, and the error is raised.
    """
    seen: set[Path] = set()
    for write in writes:
        if write.path in seen:  # two names for one file (a link to another target): one would undo the other
            raise OutputError(write.path, "is written twice: two of the files to write are the same file "
                              "(one is a link to the other)", hint="replace the link by a file of its own")
        seen.add(write.path)
        check_replaceable(write.path)
    done: list[PlannedWrite] = []
    made: list[Path] = []
    try:
        for write in writes:
            made += make_folders(write.path.parent)
            if write.previous is None and os.path.lexists(write.path):
                raise OutputError(write.path, "appeared since gpuenv checked it; it is left as it is",
                                  hint="run the command again: it sees the file this time")
            write_atomic(write.path, write.data)
            done.append(write)
    except BaseException:
        _put_back(done, made)
        raise


def _put_back(done: Sequence[PlannedWrite], made: Sequence[Path]) -> None:
    for write in reversed(done):
        with contextlib.suppress(OSError, OutputError):
            if write.previous is None:
                os.unlink(write.path)
            else:
                write_atomic(write.path, write.previous)
    for folder in reversed(made):
        with contextlib.suppress(OSError):
            os.rmdir(folder)


def problem_of(exc: OSError) -> str:
    """What an OSError says, without its errno number: "Permission denied"."""
    return exc.strerror or str(exc)


def hint_of(exc: OSError) -> str:
    """What to do about an OSError the file system answered a write with."""
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "it is not writable here: make it writable, or choose another path"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "the disk (or your quota) is full: free some space and rerun"
    if exc.errno == errno.EISDIR:
        return "a folder is in the way: name a file"
    if exc.errno == errno.ENOTDIR:
        return "a file is where a folder is needed: move it aside, or choose another path"
    if exc.errno == errno.ENAMETOOLONG:
        return "choose a shorter path"
    return "choose another path, or fix this one and rerun"
