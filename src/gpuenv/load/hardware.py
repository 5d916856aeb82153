"""``--hardware FILE``: the machine a probe wrote (``gpuenv probe --json``), read back."""

from __future__ import annotations

from pathlib import Path

from gpuenv.errors import HardwareFileError
from gpuenv.inputs import UnreadableInput, parse_json, read_input
from gpuenv.plan.hardware import Hardware, hardware_from_json


def load_hardware_file(path: Path | str) -> Hardware:
    path = Path(path)
    try:
        text = read_input(path)
    except UnreadableInput as exc:
        raise HardwareFileError(path, "cannot read: no such file" if exc.missing else exc.problem) from None
    try:
        data = parse_json(text)  # nesting, 1e999, NaN and 5000-digit integers refused in words
    except UnreadableInput as exc:
        raise HardwareFileError(path, exc.problem) from None
    return hardware_from_json(data, origin=str(path))
