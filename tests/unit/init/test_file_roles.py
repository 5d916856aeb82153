"""What each install file of a repository is for, read from where it sits, what reads it and what it
includes; and which conflict init names first. Each case is a small repository of its own."""

from __future__ import annotations

import textwrap
from pathlib import Path

from gpuenv.init.reposcan import scan_repo


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def roles(root: Path) -> dict[str, str]:
    return {a.path: a.role for a in scan_repo(root).files}


def test_a_conda_file_of_the_docs_or_a_notebook_is_not_the_env_and_its_pins_are_not_placed(
    tmp_path: Path,
) -> None:
    repo = write(
        tmp_path,
        {
            "environment.yml": """\
                name: main
                dependencies:
                  - python=3.10
                  - pytorch::pytorch=2.5
                  - pytorch::pytorch-cuda=12.4
                  - pip:
                    - einops==0.8.0
            """,
            "docs/environment.yml": """\
                name: docs
                dependencies:
                  - sphinx=7
                  - python=3.12
            """,
            "notebooks/environment.yml": """\
                name: colab
                dependencies:
                  - pip:
                    - einops==0.6.0
                    - biopython==1.79
            """,
        },
    )
    scan = scan_repo(repo)
    got = {a.path: a.role for a in scan.files}
    assert got == {
        "environment.yml": "conda",
        "docs/environment.yml": "docs",
        "notebooks/environment.yml": "demo",
    }
    placed = {f.text for f in scan.findings if f.place == "package"}
    assert "einops==0.8.0" in placed and not placed & {"einops==0.6.0", "biopython==1.79"}
    assert scan.python == "3.10" and scan.cuda == "cu124"
    assert not scan.conflicts  # the notebook's einops is not installed with the env


def test_a_conda_file_named_for_cpu_or_dev_is_still_an_env(tmp_path: Path) -> None:
    repo = write(
        tmp_path,
        {
            "env.cpu.yml": "dependencies:\n  - pytorch=2.5\n  - cpuonly\n",
            "environment-dev.yml": "dependencies:\n  - pytorch=2.5\n  - pytest\n",
        },
    )
    assert roles(repo) == {"env.cpu.yml": "conda", "environment-dev.yml": "conda"}


def test_a_list_setup_py_reads_for_a_tests_or_docs_extra_is_that_list(tmp_path: Path) -> None:
    repo = write(
        tmp_path,
        {
            "setup.py": """\
                from setuptools import setup

                def reqs(path):
                    return [line.strip() for line in open(path) if line.strip()]

                setup(
                    name="det3d",
                    install_requires=reqs("requirements/runtime.txt"),
                    extras_require={
                        "tests": reqs("requirements/tests.txt"),
                        "docs": reqs("requirements/docs-build.txt"),
                        "optional": reqs("requirements/optional.txt"),
                    },
                )
            """,
            "requirements/runtime.txt": "numpy\n",
            "requirements/tests.txt": "pytest\n",
            "requirements/docs-build.txt": "sphinx\n",
            "requirements/optional.txt": "open3d\n",
        },
    )
    got = roles(repo)
    assert got["requirements/runtime.txt"] == "install"
    assert got["requirements/tests.txt"] == "test" and got["requirements/docs-build.txt"] == "docs"
    assert got["requirements/optional.txt"] == "extra"


def test_a_list_that_includes_the_test_list_is_for_development(tmp_path: Path) -> None:
    repo = write(
        tmp_path,
        {
            "requirements.txt": "torch>=2.4\nnumpy\n",
            "requirements-test.txt": "-r requirements.txt\npytest\n",
            "requirements-benchmark.txt": "-r requirements-test.txt\npandas==2.2.2\n",
            "requirements-viz.txt": "-r requirements.txt\nmatplotlib\n",
        },
    )
    got = roles(repo)
    assert got["requirements-benchmark.txt"] == "dev"
    assert got["requirements-viz.txt"] == "extra"  # it builds on the install, not on the tests
    assert got["requirements-test.txt"] == "test"


def test_the_conflict_named_is_the_one_with_the_install_before_one_between_two_optional_lists(
    tmp_path: Path,
) -> None:
    repo = write(
        tmp_path,
        {
            "pyproject.toml": """\
                [project]
                name = "tuner"
                version = "1"
                dependencies = ["transformers>=4.55.0,!=4.57.0"]
            """,
            "requirements/moss.txt": "transformers==4.57.1\n",
            "requirements/sglang.txt": "transformers==4.51.1\n",
        },
    )
    (said,) = scan_repo(repo).conflicts
    assert "pyproject.toml" in said and "requirements/sglang.txt:1" in said
    assert "moss" not in said  # 4.57.1 and the install agree; the two optional lists clash, but later
