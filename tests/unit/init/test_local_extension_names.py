"""Local extension folders get one recipe entry per distribution: the same op copied into several
sub-projects is built once, and two different ops in folders of the same name both get an entry the
recipe loader accepts."""

from __future__ import annotations

import textwrap
from pathlib import Path

from gpuenv.init.reposcan import scan_repo
from gpuenv.init.writer import init_repo
from gpuenv.load.recipe import load_recipe


def op(root: Path, folder: str, name: str) -> None:
    path = root / folder
    path.mkdir(parents=True)
    (path / "setup.py").write_text(
        textwrap.dedent(f"""\
            from setuptools import setup
            from torch.utils.cpp_extension import BuildExtension, CUDAExtension
            setup(name="{name}", version="1.0", ext_modules=[CUDAExtension("{name}", ["src/k.cu"])],
                  cmdclass={{"build_ext": BuildExtension}})
        """)
    )
    (path / "src").mkdir()
    (path / "src" / "k.cu").write_text("__global__ void k() {}\n")


def test_the_same_op_copied_into_three_subprojects_is_built_once_and_the_copies_named(tmp_path: Path) -> None:
    for task in ("classification", "detection", "segmentation"):
        op(tmp_path, f"{task}/ops_dcnv3", "DCNv3")
    scan = scan_repo(tmp_path)
    built = [f.text for f in scan.findings if f.place == "local-extension"]
    copies = {f.text: f.note for f in scan.findings if f.place == "unplaced"}
    assert built == ["./classification/ops_dcnv3"]
    assert set(copies) == {"./detection/ops_dcnv3", "./segmentation/ops_dcnv3"}
    assert all("a copy of ./classification/ops_dcnv3" in note and "dcnv3" in note for note in copies.values())
    recipe = load_recipe(init_repo(tmp_path, origin="gpuenv").recipe)  # the loader takes what init wrote
    assert [e.path.name for e in recipe.extensions if e.path is not None] == ["ops_dcnv3"]


def test_two_different_ops_in_folders_of_one_name_both_get_an_entry(tmp_path: Path) -> None:
    op(tmp_path, "det/ops", "MultiScaleDeformableAttention")
    op(tmp_path, "seg/ops", "pixel_ops")
    scan = scan_repo(tmp_path)
    built = sorted(f.text for f in scan.findings if f.place == "local-extension")
    assert built == ["./det/ops", "pixel-ops @ ./seg/ops"]
    recipe = load_recipe(init_repo(tmp_path, origin="gpuenv").recipe)
    assert sorted(e.name for e in recipe.extensions) == ["ops", "pixel-ops"]
