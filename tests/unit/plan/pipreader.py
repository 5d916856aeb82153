"""How pip itself reads requirements files: run as a script with the test venv's Python (its pip).

Reads a JSON list of {"path", "cwd"} on stdin; prints, for each file, every line pip's
own parser yields (pip._internal.req.req_file.RequirementsFileParser, the parser of
``parse_requirements``) with what pip makes of it (install_req_from_parsed_requirement),
or the error that stops the file. Only pip's parsing runs: nothing is fetched or built.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def read(path: str) -> dict[str, Any]:
    from pip._internal.exceptions import InstallationError, PipError, RequirementsFileParseError
    from pip._internal.network.session import PipSession
    from pip._internal.req.constructors import install_req_from_parsed_requirement
    from pip._internal.req.req_file import RequirementsFileParser, get_line_parser, handle_requirement_line

    line_parser = get_line_parser(None)
    last: list[str] = []

    def parse_line(line: str) -> Any:
        last[:] = [line]
        return line_parser(line)

    lines: list[dict[str, Any]] = []
    result: dict[str, Any] = {"lines": lines, "error": None}
    parser = RequirementsFileParser(PipSession(), parse_line)
    try:
        for parsed in parser.parse(path, constraint=False):
            opts = parsed.opts
            entry: dict[str, Any] = {
                "file": os.path.abspath(parsed.filename),
                "lineno": parsed.lineno,
                "requirement": parsed.requirement,
                "editable": parsed.is_editable,
                "constraint": parsed.constraint,
                "index_url": opts.index_url,
                "extra_index_urls": opts.extra_index_urls or [],
                "find_links": opts.find_links or [],
                "no_index": bool(opts.no_index),
            }
            if parsed.requirement is not None:
                req = handle_requirement_line(parsed)
                options = req.options or {}
                hashes = options.get("hashes") or {}
                entry["hashes"] = sorted(f"{a}:{d}" for a, ds in hashes.items() for d in ds)
                entry["config_settings"] = options.get("config_settings") or {}
                try:
                    ireq = install_req_from_parsed_requirement(req)
                except (PipError, ValueError) as exc:  # InstallationError, InvalidWheelFilename…
                    entry["ireq_error"] = str(exc)
                else:
                    marker = ireq.markers or (ireq.req.marker if ireq.req is not None else None)
                    entry["ireq"] = {
                        "name": ireq.name.lower().replace("_", "-").replace(".", "-") if ireq.name else None,
                        "specifier": str(ireq.req.specifier) if ireq.req is not None else "",
                        "extras": sorted(ireq.extras),
                        "marker": str(marker) if marker is not None else None,
                        "url": ireq.link.url if ireq.link is not None else None,
                    }
            lines.append(entry)
    except (RequirementsFileParseError, InstallationError) as exc:
        result["error"] = str(exc)
        result["error_line"] = last[0] if last else None
    return result


def main() -> None:
    out = []
    for job in json.load(sys.stdin):
        os.chdir(job["cwd"])
        out.append(read(job["path"]))
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
