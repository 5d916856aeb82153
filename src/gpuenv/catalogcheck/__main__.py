"""``python -m gpuenv.catalogcheck``: check the extension catalog against the packages' build files.

Prints the Markdown report (``--out FILE`` writes it too) and exits 1 when any
fact disagrees, 0 when none does, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import datetime
import difflib
import os
import shlex
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from gpuenv.cache.wheels import default_cache_dir
from gpuenv.catalogcheck.catalogview import load_catalog
from gpuenv.catalogcheck.check import CheckOptions, parse_assignments, run_check
from gpuenv.catalogcheck.report import render_markdown
from gpuenv.catalogcheck.sdists import index_urls
from gpuenv.env.pipconfig import pip_config, pip_sources
from gpuenv.errors import EXIT_OK, EXIT_STEP_FAILED, GpuenvError, InputError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m gpuenv.catalogcheck",
        description="Re-derive the extension catalog's facts from each package's own build files "
                    "(the newest sdist on the configured index and the versions at the edges of the "
                    "catalog's version ranges) and print every disagreement.",
    )
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help="check only this extension (repeatable)")
    parser.add_argument("--source", action="append", default=[], metavar="NAME=PATH",
                        help="read NAME's build files from a local checkout, an unpacked tree or an sdist "
                             "instead of the index (repeatable, also for one NAME); apex is git-only")
    parser.add_argument("--also", action="append", default=[], metavar="NAME==VERSION",
                        help="also check this version from the index (repeatable)")
    parser.add_argument("--out", type=Path, metavar="FILE", help="write the report to FILE as well")
    parser.add_argument("--catalog", type=Path, metavar="FILE",
                        help="check this extensions.toml instead of the one gpuenv ships")
    parser.add_argument("--cache-dir", type=Path, metavar="DIR",
                        help="where sdists are kept (default: the gpuenv cache's catalogcheck folder)")
    parser.add_argument("--timeout", type=float, default=30.0, metavar="S",
                        help="seconds each network read may take (default 30)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return parser


def _options(args: argparse.Namespace) -> CheckOptions:
    catalog = load_catalog(args.catalog)
    known = catalog.names

    def check_name(name: str, option: str) -> str:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            raise InputError(f"{option} {name}: not an extension of the catalog",
                             hint=f"did you mean {close[0]}?" if close else "one of: " + ", ".join(known))
        return name

    only = tuple(check_name(n, "--only") for n in args.only)
    sources: dict[str, tuple[Path, ...]] = {}
    for name, paths in parse_assignments(args.source, option="--source", separator="=").items():
        resolved = tuple(Path(p).expanduser().absolute() for p in paths)
        for path in resolved:
            if not path.exists():
                raise InputError(f"--source {name}={path}: no such file or directory",
                                 hint="name an sdist, a wheel or a source folder that exists")
        sources[check_name(name, "--source")] = resolved
    also = {check_name(n, "--also"): tuple(v) for n, v in
            parse_assignments(args.also, option="--also", separator="==").items()}
    if args.timeout <= 0:
        raise InputError(f"--timeout {args.timeout:g}: give a number of seconds above 0",
                         hint="e.g. --timeout 60")
    pip = pip_sources(pip_config())
    needs_index = any(n not in sources for n in (only or tuple(known)))
    return CheckOptions(
        only=only,
        sources=sources,
        also=also,
        indexes=tuple(index_urls(pip)) if needs_index else (),
        cert=pip.cert,
        cache=(args.cache_dir or default_cache_dir() / "catalogcheck").expanduser().absolute(),
        timeout=args.timeout,
        catalog=catalog,
    )


def _write(path: Path, text: str) -> None:
    path = path.expanduser().absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False,
                                     encoding="utf-8") as handle:
        handle.write(text)
    os.replace(handle.name, path)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    try:
        options = _options(args)

        def progress(line: str) -> None:
            if not args.quiet:
                print(line, file=sys.stderr, flush=True)

        date = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
        result = run_check(options, date=date, progress=progress)
        text = render_markdown(result, command=shlex.join(["python", "-m", "gpuenv.catalogcheck", *argv]))
        if args.out:
            _write(args.out, text)
    except GpuenvError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    sys.stdout.write(text)
    found = len(result.disagreements)
    if not args.quiet:
        print(f"{found} disagreement{'s' if found != 1 else ''}"
              + (f", {len(result.not_checked)} not checked" if result.not_checked else ""), file=sys.stderr)
    return EXIT_STEP_FAILED if found else EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
