"""``--hardware FILE``: the machine a probe wrote (``gpuenv probe --json``), read back."""

from __future__ import annotations

import json
from pathlib import Path

from gpuenv.errors import HardwareFileError
from gpuenv.inputs import UnreadableInput, read_input
from gpuenv.plan.hardware import Hardware, hardware_from_json


def load_hardware_file(path: Path | str) -> Hardware:
    path = Path(path)
    try:
        text = read_input(path)
    except UnreadableInput as exc:
        raise HardwareFileError(path, "cannot read: no such file" if exc.missing else exc.problem) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise HardwareFileError(path, f"not valid JSON: {exc}") from None
    except (ValueError, RecursionError) as exc:  # an integer too long to convert
        raise HardwareFileError(path, f"not a probe's JSON: {exc}") from None
    return hardware_from_json(data, origin=str(path))
