"""Errors as scripts read them: a stable code per kind, their data in JSON, every code documented."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import gpuenv
from gpuenv import errors
from gpuenv.errors import GpuenvError, NoVariantError, RequiredSkipError, ToolkitError

PACKAGE = Path(gpuenv.__file__).parent
README = PACKAGE.parents[1] / "README.md"
ERRORS = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, GpuenvError)]


def codes_in_the_source() -> set[str]:
    """Every code gpuenv can report: each error class's, and each ``code="..."`` given where one is raised."""
    found = {c.code for c in ERRORS}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.keyword) and node.arg == "code" and isinstance(node.value, ast.Constant) \
                    and isinstance(node.value.value, str):
                found.add(node.value.value)
    return found


def test_each_kind_of_error_has_its_own_code_never_its_class_name() -> None:
    codes = [c.code for c in ERRORS]
    assert len(set(codes)) == len(codes), "two error classes share a code"
    assert all(re.fullmatch(r"[a-z]+(-[a-z0-9]+)*", code) for code in codes_in_the_source())


def test_to_json_gives_the_code_message_hint_and_the_data_the_message_is_made_from() -> None:
    skipped = RequiredSkipError("flash-attn", "needs compute capability 8.0")
    assert skipped.to_json() == {"code": "required-skipped", "message": str(skipped), "hint": skipped.hint,
                                 "name": "flash-attn", "reason": "needs compute capability 8.0"}
    found = ["nvcc 13.0 at /opt/cuda/bin/nvcc"]
    toolkit = ToolkitError("no nvcc 12.x", needed="12.x", found=found)
    assert toolkit.to_json()["needed"] == "12.x" and toolkit.to_json()["found"] == found
    # One class, several kinds: the raise site names the kind and its values; a new hint keeps both.
    old = NoVariantError("driver 450 is too old", hint="upgrade", code="driver-too-old", driver="450.80",
                         needed=["11.8"])
    again = old.with_hint("upgrade the driver")
    assert again.to_json() == {"code": "driver-too-old", "message": "driver 450 is too old",
                               "hint": "upgrade the driver", "driver": "450.80", "needed": ["11.8"]}
    assert json.loads(json.dumps(again.to_json())) == again.to_json()


def test_every_code_gpuenv_can_report_is_documented_in_the_readme() -> None:
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## JSON output\n", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`([a-z][a-z0-9-]*)`", section))
    assert codes_in_the_source() <= documented, codes_in_the_source() - documented


def test_every_bad_input_error_raised_comes_with_a_hint() -> None:
    """Exit 2 means the user can fix it: the CLI prints ``error:`` then ``hint:`` saying how. The
    subclasses (RecipeError, OutputError, HardwareFileError) make their own hint; a plain InputError
    has only the one its raise site gives (campaign 3: ``export uv --write`` onto a FIFO, or a
    pyproject.toml that is not TOML, printed no hint)."""
    without = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            called = node.func.id if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) else None
            if called == "InputError" and not any(k.arg in ("hint", None) for k in node.keywords):
                without.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert without == []


def test_a_failed_command_names_a_multi_line_script_instead_of_printing_it() -> None:
    """Campaign 3: an env whose Python dies at startup (a .pth that is not UTF-8) printed gpuenv's
    100-line query script between ``error:`` and the interpreter's own lines that say why."""
    script = "import json\nimport os\nprint(1)\n"
    error = errors.CommandError(["/env/bin/python", "-c", script, "torch"], 1,
                                tail="UnicodeDecodeError: 'utf-8' codec can't decode byte 0xbb")
    assert str(error) == ("command failed with exit code 1: /env/bin/python -c <a 4-line script> torch\n"
                          "UnicodeDecodeError: 'utf-8' codec can't decode byte 0xbb")
    assert error.data()["cmd"][2] == script  # the JSON keeps the command as it ran
