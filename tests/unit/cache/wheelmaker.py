"""Real (small) wheel files for the shared-cache and audit tests: a zip with METADATA, WHEEL and a
RECORD whose hashes are right, as a build backend writes them."""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Mapping
from pathlib import Path

from gpuenv.cache.wheelfile import record_hash


def make_wheel(directory: Path, file_name: str, files: Mapping[str, bytes] | None = None) -> Path:
    """``directory/file_name`` holding ``files`` (paths inside the wheel) and its .dist-info."""
    name, version = file_name.split("-")[:2]
    info = f"{name}-{version}.dist-info"
    content = dict(files or {f"{name}/__init__.py": b"ANSWER = 42\n"})
    content[f"{info}/METADATA"] = (f"Metadata-Version: 2.1\nName: {name.replace('_', '-')}\n"
                                   f"Version: {version}\nSummary: a test wheel\n\n").encode()
    content[f"{info}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: gpuenv-tests\nRoot-Is-Purelib: false\n"
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    for path, data in content.items():
        writer.writerow([path, record_hash(data), len(data)])
    writer.writerow([f"{info}/RECORD", "", ""])
    directory.mkdir(parents=True, exist_ok=True)
    wheel = directory / file_name
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data in content.items():
            archive.writestr(path, data)
        archive.writestr(f"{info}/RECORD", record.getvalue())
    return wheel
