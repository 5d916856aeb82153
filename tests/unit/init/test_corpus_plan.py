"""gpuenv init, then gpuenv plan, on each repository of the corpus, compared with what a careful reader
of its install files infers (tests/data/repos/*/expected.toml).

Every expected fact is compared (tests/unit/init/corpus_check.py): torch and its CUDA, Python, the repo's own
CUDA build, each extension, each file's role, each conflict, each blocker, each name that is not the
catalog's package. A fact gpuenv does not reach is listed below with why; the list is exact both ways,
so a fix shows up as a test to update, and a regression as a failure.
``python -m tests.unit.init.corpus_check`` prints the whole table.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.corpus import load_corpus
from tests.unit.init.corpus_check import facts, run

REPOS = load_corpus()

_OLD_TORCH = (
    "a torch older than the releases gpuenv's data knows (1.13 and newer): the plan exits 3 naming it"
)
_NOT_CATALOGUED = (
    "a package that builds CUDA against torch but is not in gpuenv's extension catalog: "
    "planned as an ordinary package"
)
_BY_HAND = "optional only by the repository's install script or README, which init does not read"

#: Facts gpuenv does not reach, per repository: fact → why.
GAPS: dict[str, dict[str, str]] = {
    "EleutherAI__gpt-neox": {
        "python": "the Python is stated only by poetry's ^3.8 in requirements/pyproject.toml, "
        "a poetry table init does not read"
    },
    "NVIDIA__MinkowskiEngine": {"init and plan": _OLD_TORCH},
    "sxyu__svox2": {"init and plan": _OLD_TORCH},
    "Open-Catalyst-Project__ocp": dict.fromkeys(
        [
            "torch",
            "torch.cuda",
            "python",
            "file packages/requirements.txt",
            "file packages/requirements-optional.txt",
            "file packages/fairchem-core/pyproject.toml",
            "conflict numpy",
        ],
        "a monorepo without a root project: its main package (packages/fairchem-core) reads as one "
        "sub-project "
        "among six, and its CI lists as tool lists (the CI workflows are not among the files)",
    ),
    "OpenGVLab__InternVL": {"extension mmcv-full": _NOT_CATALOGUED},
    "ashawkey__torch-ngp": {
        "torch.cuda": "cudatoolkit=11.3: no torch release gpuenv knows has a cu113 build, so "
        "the CUDA is left to the machine (with a note)",
        "extension ffmlp": _BY_HAND,
        "extension tinycudann": _NOT_CATALOGUED,
    },
    "atomicarchitects__equiformer": {"extension torch-spline-conv": _NOT_CATALOGUED},
    "dreamgaussian__dreamgaussian": {
        "extension simple-knn": "its setup.py is not in the corpus copy (another "
        "licence): the folder is empty here"
    },
    "hustvl__Vim": {
        "extension det": _BY_HAND,
        "blocker seg/seg-requirements.txt": "the file:// lines are in the seg/ sub-project's frozen env, "
        "which is not the repository's install",
    },
    "nerfstudio-project__nerfstudio": {
        "file nerfstudio/viewer_legacy/app/requirements.txt": "a folder named app reads as a demo; this one "
        "is the legacy web viewer's deploy helper (run_deploy.py beside a JavaScript app), which only the "
        "folder's other files say"
    },
    "spla-tam__SplaTAM": {"extension diff-gaussian-rasterization": _NOT_CATALOGUED},
    "yuxumin__PoinTr": {"extension extensions/emd": _BY_HAND},
}


@pytest.mark.parametrize("repo", REPOS, ids=[r.name for r in REPOS])
def test_init_and_plan_reach_what_a_careful_reader_infers(repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    if repo.source.get("submodules") and shutil.which("git") is None:
        pytest.skip("git writes the gitlinks of a fresh clone's index")
    outcome = run(repo, tmp_path)  # any exception that is not a GpuenvError fails here, with its traceback
    missed = {f.key: f for f in facts(repo, outcome) if not f.agrees}
    gaps = GAPS.get(repo.name, {})
    unexpected = [f"{k}: expected {f.expected}, got {f.got}" for k, f in missed.items() if k not in gaps]
    assert not unexpected, "\n".join(unexpected)
    fixed = [k for k in gaps if k not in missed]
    assert not fixed, f"reached now, take them off GAPS: {fixed}"


def test_every_gap_names_a_corpus_repository() -> None:
    assert set(GAPS) <= {r.name for r in REPOS}
