"""gpuenv reads requirements files as pip does: the same lines, names, URLs, options and refusals.

The differential test runs pip's own parser (tests/unit/plan/pipreader.py, with this venv's pip) on
hostile synthetic files and on every requirements file of the corpus (tests/data/repos), and
compares what gpuenv's reader (gpuenv.load.requirements) makes of each line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from packaging.specifiers import SpecifierSet

from gpuenv.errors import InputError
from gpuenv.load.pipline import VCS_SCHEMES
from gpuenv.load.pipoptions import LONG_OPTIONS, SHORT_OPTIONS
from gpuenv.load.requirements import RequirementsFile, index_variant, read_requirements

PIP_READER = Path(__file__).with_name("pipreader.py")
REPOS = Path(__file__).parents[2] / "data" / "repos"

#: Hostile and unusual files: name -> {file name: text}; the first file is the one read.
CASES: dict[str, dict[str, str]] = {
    "bom-and-crlf": {"r.txt": "\ufefftorch==2.2.2\r\nnumpy>=1.24\r\n"},
    "continuations": {"r.txt": "numpy \\\n  >=1.24\n# a comment \\\nscipy\\\n\nfoo # bar \\\nbaz\nlast\\"},
    "per-requirement-options": {
        "r.txt": textwrap.dedent("""\
        torch==2.2.2 --index-url https://download.pytorch.org/whl/cu121
        torchvision==0.17.2 --extra-index-url https://download.pytorch.org/whl/cu121
        xformers==0.0.25 --hash=sha256:aaaa --hash sha384:bbbb
        mypkg==1.0 --config-settings=--build-option=--cuda_ext -C editable_mode=compat
        --hash=sha256:cccc
    """)
    },
    "abbreviations": {
        "r.txt": "--extra https://x.invalid/simple\n--index=https://y.invalid/simple\n"
        "-ihttps://z.invalid/simple\n--find https://w.invalid/links\nnumpy\n"
    },
    "includes": {
        "r.txt": "-r sub/base.txt\n-rsub/more.txt\n-c sub/constraints.txt\nfoo\n",
        "sub/base.txt": "bar>=1\n-r ../common.txt\n",
        "sub/more.txt": "baz; python_version >= '3.8'\n",
        "sub/constraints.txt": "bar<3\n",
        "common.txt": "qux==1.0\n",
    },
    "self-include": {"r.txt": "a\n-r r.txt\n"},
    "include-cycle": {"r.txt": "a\n-r s.txt\n", "s.txt": "b\n-r r.txt\n"},
    "missing-include": {"r.txt": "a\n-r nowhere.txt\n"},
    "editables": {
        "r.txt": "-e .[train,eval]\n-e ./lib\n--editable=./lib\n"
        "-e git+https://github.com/org/repo.git@v1#egg=repo\n"
        "-e mylib @ git+https://github.com/org/mylib.git\n",
        "setup.py": "",
        "lib/pyproject.toml": "",
    },
    "editable-without-name": {"r.txt": "-e git+https://github.com/org/repo.git\n"},
    "editable-missing": {"r.txt": "-e ./missing\n"},
    "urls": {
        "r.txt": textwrap.dedent("""\
        git+https://github.com/NVIDIA/apex.git#egg=apex
        git+https://github.com/org/mono.git@abc#egg=sub&subdirectory=python
        https://files.invalid/pkg-1.0.tar.gz; python_version >= "3.8"
        https://files.invalid/flash_attn-2.5.6+cu122torch2.2-cp310-cp310-linux_x86_64.whl
        name @ https://files.invalid/name-1.0.zip ; sys_platform == "linux"
        git+ssh://git@github.com/org/priv.git
        https://files.invalid/x.tar.gz;python_version>"3"
    """)
    },
    "paths": {
        "r.txt": "./pkg\n./pkg[extra]\n./wheels/foo-1.0-py3-none-any.whl\n./sdists/bar-2.0.tar.gz\n"
        "other @ ./nowhere/other-1.0.tar.gz\n/abs/none-1.0.zip\n",
        "pkg/setup.py": "",
    },
    "not-installable-dir": {"r.txt": "./docs\n", "docs/index.md": ""},
    "markers": {
        "r.txt": "pywin32; sys_platform == 'win32'\nuvloop ; platform_system != \"Windows\"\n"
        "triton>=2; platform_machine == 'x86_64' and python_version < '3.13'\n"
    },
    "bad-marker": {"r.txt": "foo; python_versio == '3'\n"},
    "env-vars": {"r.txt": "pkg @ https://${GPUENV_TEST_HOST}/pkg-1.0.zip\nother==${UNSET_GPUENV_VAR}\n"},
    "file-options": {
        "r.txt": "--pre\n--prefer-binary\n--no-binary :all:\n--only-binary=:none:\n"
        "--trusted-host example.invalid\n--require-hashes\n-f ./wheels\n"
        "--use-feature=truststore\nnumpy\n",
        "wheels/.keep": "",
    },
    "no-index": {"r.txt": "--no-index\n--find-links=./wheels\nnumpy\n"},
    "unknown-option": {"r.txt": "numpy\n--frobnicate\nscipy\n"},
    "removed-global-option": {"r.txt": "numpy --global-option=--no-user-cfg\n"},
    "weak-hash": {"r.txt": "numpy --hash=md5:abcd\n"},
    "bad-config-settings": {"r.txt": "numpy --config-settings novalue\n"},
    "bad-feature": {"r.txt": "--use-feature=warp-drive\n"},
    "missing-value": {"r.txt": "numpy\n-r\n"},
    "unbalanced-quote": {"r.txt": "numpy --hash 'sha256:abc\n"},
    "two-on-a-line": {"r.txt": "numpy scipy\n"},
    "tab-before-option": {"r.txt": "numpy\t--hash=sha256:abc\n"},
    "single-equals": {"r.txt": "numpy=1.24\n"},
    "git-scheme-alone": {"r.txt": "git://github.com/org/repo.git\n"},
    "bad-egg": {"r.txt": "git+https://github.com/org/repo.git#egg=-bad-\n"},
    "bad-wheel-name": {"r.txt": "https://files.invalid/notawheel.whl\n"},
    "leftover-words": {"r.txt": "-r base.txt extra-word\n", "base.txt": "a\n"},
    "double-dash": {"r.txt": "numpy -- --frobnicate\n"},
    "form-feed-and-unicode-separators": {"r.txt": "numpy\x0cscipy\u2028pandas\x85torch\n"},
    "coding-line": {"r.txt": "# -*- coding: latin-1 -*-\nnumpy # caf\xe9\n"},
    "comment-hash-in-url": {"r.txt": "https://files.invalid/pkg-1.0.tar.gz#sha256=abc\npkg2 # comment\n"},
    "dash-e-with-options": {"r.txt": "-e ./lib --config-settings k=v --hash=sha256:x\n", "lib/setup.py": ""},
    "requirement-and-include": {"r.txt": "numpy -r other.txt\n"},
    "only-dash": {"r.txt": "numpy -\n"},
    "nul-byte": {"r.txt": "num\x00py\nscipy\n"},
}


def write_case(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode("latin-1" if "coding: latin-1" in text else "utf-8"))
    return root / next(iter(files))


def pip_reads(jobs: list[tuple[Path, Path]]) -> list[dict[str, Any]]:
    """What pip makes of each (file, directory pip runs in)."""
    env = {**os.environ, "GPUENV_TEST_HOST": "mirror.invalid", "PIP_NO_INPUT": "1"}
    env.pop("UNSET_GPUENV_VAR", None)
    done = subprocess.run(
        [sys.executable, str(PIP_READER)],
        input=json.dumps([{"path": str(p), "cwd": str(c)} for p, c in jobs]),
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: list[dict[str, Any]] = json.loads(done.stdout)
    return result


def gpuenv_reads(path: Path, base: Path) -> RequirementsFile | str:
    try:
        return read_requirements(path, base=base, lenient=True)
    except InputError as exc:
        return str(exc)


def differences(path: Path, base: Path, pip: dict[str, Any]) -> list[str]:
    """Where gpuenv's reading of ``path`` differs from pip's; [] when they agree."""
    ours = gpuenv_reads(path, base)
    if isinstance(ours, str):
        return [] if pip["error"] else [f"gpuenv cannot read the file ({ours}); pip can"]
    problems: list[str] = []
    refused = {(os.path.abspath(line.path), line.lineno): (line, why) for line, why in ours.invalid}
    pip_lines = {(e["file"], e["lineno"]): e for e in pip["lines"] if e["requirement"] is not None}
    ours_lines = {
        (os.path.abspath(line.path), line.lineno): line for line in (*ours.requirements, *ours.constraints)
    }
    for key, entry in pip_lines.items():
        where = f"{Path(key[0]).name}:{key[1]}"
        if "ireq_error" in entry:
            if key not in refused:
                problems.append(
                    f"{where}: pip refuses {entry['requirement']!r} ({entry['ireq_error']}); "
                    f"gpuenv reads it as {ours_lines.get(key)}"
                )
            continue
        line = ours_lines.get(key)
        if line is None:
            problems.append(
                f"{where}: pip reads {entry['requirement']!r}; gpuenv: "
                f"{refused.get(key, ('not a requirement',))[-1]}"
            )
            continue
        problems += _compare(where, entry, line)
    for key, line in ours_lines.items():
        if key not in pip_lines and not pip["error"]:
            problems.append(f"{Path(key[0]).name}:{key[1]}: gpuenv reads {line.text!r}; pip does not")
    if pip["error"]:
        if not ours.invalid:
            problems.append(f"pip refuses the file ({pip['error']}); gpuenv reads it")
        elif pip.get("error_line") is not None and ours.invalid[0][0].text != pip["error_line"]:
            first = ours.invalid[0][0]
            problems.append(f"pip stops at {pip['error_line']!r} ({pip['error']}); gpuenv at {first.text!r}")
    else:
        for key, (line, why) in refused.items():
            if key not in pip_lines or "ireq_error" not in pip_lines[key]:
                problems.append(
                    f"{Path(key[0]).name}:{key[1]}: gpuenv refuses {line.text!r} ({why}); pip reads it"
                )
        problems += _compare_file_options(pip["lines"], ours)
    return problems


def _compare(where: str, entry: dict[str, Any], line: Any) -> list[str]:
    ireq, parsed = entry["ireq"], line.parsed
    ours = {
        "name": parsed.name,
        "specifier": str(SpecifierSet(parsed.specifier)),
        "extras": sorted(parsed.extras),
        "marker": parsed.marker,
        "url": _url(parsed.url),
    }
    theirs = {**ireq, "specifier": str(SpecifierSet(ireq["specifier"])), "url": _url(ireq["url"])}
    found = [f"{where}: {k}: pip {theirs[k]!r}, gpuenv {ours[k]!r}" for k in ours if ours[k] != theirs[k]]
    if line.editable != entry["editable"]:
        found.append(f"{where}: editable: pip {entry['editable']}, gpuenv {line.editable}")
    if list(line.hashes) != entry["hashes"] and sorted(line.hashes) != entry["hashes"]:
        found.append(f"{where}: hashes: pip {entry['hashes']}, gpuenv {list(line.hashes)}")
    settings: dict[str, Any] = {}
    for key, value in line.config_settings:
        settings[key] = (
            [settings[key], value]
            if isinstance(settings.get(key), str)
            else ([*settings[key], value] if key in settings else value)
        )
    if settings != entry["config_settings"]:
        found.append(f"{where}: config settings: pip {entry['config_settings']}, gpuenv {settings}")
    return found


def _url(url: str | None) -> str | None:
    """File URLs as paths: pip and pathlib quote a few characters differently."""
    from urllib.parse import unquote

    return unquote(url).rstrip("/") if url else url


def _compare_file_options(lines: list[dict[str, Any]], ours: RequirementsFile) -> list[str]:
    options = [e for e in lines if e["requirement"] is None]
    index = next((e["index_url"] for e in reversed(options) if e["index_url"]), None)
    extra = list(dict.fromkeys(u for e in options for u in e["extra_index_urls"]))
    no_index = any(e["no_index"] for e in options)
    found = []
    if index != ours.index_url:
        found.append(f"--index-url: pip {index}, gpuenv {ours.index_url}")
    if extra != list(ours.extra_index_urls):
        found.append(f"--extra-index-url: pip {extra}, gpuenv {list(ours.extra_index_urls)}")
    if no_index != any(o == "--no-index" for _, o in ours.options):
        found.append(f"--no-index: pip {no_index}")
    links = [Path(e["find_links"][0]).name for e in options if e["find_links"]]
    if links != [Path(link).name for link in ours.find_links]:
        found.append(f"--find-links: pip {links}, gpuenv {list(ours.find_links)}")
    return found


def test_gpuenv_reads_hostile_files_as_pip_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPUENV_TEST_HOST", "mirror.invalid")
    monkeypatch.delenv("UNSET_GPUENV_VAR", raising=False)
    jobs = []
    for name, files in CASES.items():
        root = tmp_path / name
        jobs.append((write_case(root, files), root))
    report = []
    for (path, base), pip in zip(jobs, pip_reads(jobs)):
        report += [f"{path.parent.name}: {d}" for d in differences(path, base, pip)]
    assert not report, "\n".join(report)


def corpus_files() -> list[tuple[Path, Path]]:
    """Every requirements file of the corpus, with the repository root pip would run in."""
    found = []
    for repo in sorted(p for p in REPOS.glob("*") if p.is_dir()):
        for path in sorted(repo.rglob("*.txt")):
            name = path.name.lower()
            if (
                "requirement" in name
                or name.startswith(("req", "constraints"))
                or path.parent.name == "requirements"
            ):
                found.append((path, repo))
    return found


@pytest.mark.skipif(not corpus_files(), reason="the corpus (tests/data/repos) is not in this checkout")
def test_gpuenv_reads_every_corpus_requirements_file_as_pip_does() -> None:
    jobs = corpus_files()
    report = []
    for (path, base), pip in zip(jobs, pip_reads(jobs)):
        report += [f"{path.relative_to(REPOS)}: {d}" for d in differences(path, base, pip)]
    assert not report, "\n".join(report)


def test_the_option_table_is_pips() -> None:
    """Every option of pip's requirements-file parser, whether it takes a value, and pip's URL schemes."""
    script = textwrap.dedent("""\
        import json
        from pip._internal.req.req_file import build_parser
        from pip._internal.vcs import vcs
        options = {}
        for o in build_parser().option_list:
            for s in o._long_opts + o._short_opts:
                options[s] = o.takes_value()
        print(json.dumps({"options": options, "vcs": sorted(vcs.all_schemes)}))
    """)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    pip = json.loads(done.stdout)
    ours = {name: takes for name, (_, takes) in LONG_OPTIONS.items()}
    ours.update({short: LONG_OPTIONS[long][1] for short, long in SHORT_OPTIONS.items()})
    assert ours == pip["options"]
    assert sorted(VCS_SCHEMES) == pip["vcs"]


def test_reading_is_linear_in_the_number_of_lines(tmp_path: Path) -> None:
    """80,000 lines read in one pass: counted in work done per line, not in seconds."""
    import gpuenv.load.requirements as module

    calls = {"n": 0}
    real = module.split_line

    def counting(line: str) -> tuple[str, str]:
        calls["n"] += 1
        return real(line)

    path = tmp_path / "big.txt"
    path.write_text("".join(f"pkg{i}=={i}.0 --hash=sha256:{i:x}\n" for i in range(80_000)))
    module.split_line = counting  # type: ignore[assignment]
    try:
        parsed = read_requirements(path)
    finally:
        module.split_line = real  # type: ignore[assignment]
    assert len(parsed.requirements) == 80_000 and calls["n"] == 80_000


@pytest.mark.parametrize(
    ("url", "variant"),
    [
        ("https://download.pytorch.org/whl/cu121", "cu121"),
        ("https://download.pytorch.org/whl/nightly/cu128/", "cu128"),
        ("https://download.pytorch.org/whl/cpu", "cpu"),
        ("https://download.pytorch.org/whl/rocm6.3", "rocm6.3"),
        ("https://pypi.org/simple", None),
        ("https://mirror.invalid/whl/cuda", None),
    ],
)
def test_an_index_url_says_which_build_it_serves(url: str, variant: str | None) -> None:
    assert index_variant(url) == variant


def test_the_cuda_an_index_on_a_requirement_line_asks_for_is_kept(tmp_path: Path) -> None:
    path = write_case(tmp_path, CASES["per-requirement-options"])
    parsed = read_requirements(path)
    assert [v for v, _ in parsed.variants()] == ["cu121", "cu121"]
    torch = parsed.requirements[0]
    assert torch.name == "torch" and torch.text == "torch==2.2.2"
    assert torch.ignored_options == ("--index-url https://download.pytorch.org/whl/cu121",)


def test_a_line_pip_refuses_is_an_error_naming_the_file_and_line(tmp_path: Path) -> None:
    path = write_case(tmp_path, {"r.txt": "numpy\nnumpy scipy\n"})
    with pytest.raises(InputError, match=r"r\.txt:2: 'numpy scipy'"):
        read_requirements(path)
    assert [line.lineno for line, _ in read_requirements(path, lenient=True).invalid] == [2]
