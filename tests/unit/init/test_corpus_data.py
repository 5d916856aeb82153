"""The corpus of real research repositories is well-formed: each folder holds exactly the install files
its SOURCE.toml names, from a permissively licensed commit, and every fact in its expected.toml points
to a file and line that says it. This checks the data only; it runs no gpuenv code."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from tests.corpus import (
    ALLOWED_LICENSES,
    CORPUS,
    KINDS,
    ROLES,
    Blocker,
    Conflict,
    CorpusRepo,
    Expected,
    Extension,
    LocalFolder,
    NotACatalogPackage,
    Python,
    RepoBuild,
    RequirementsFile,
    Source,
    Submodule,
    Torch,
    load_corpus,
    parse_ref,
)

REPOS = load_corpus()
MAX_BYTES = 200 * 1024
BOOKKEEPING = {"SOURCE.toml", "expected.toml"}
#: What an install file may be called: requirements-like files, package metadata, conda files, .gitmodules.
INSTALL_FILE = re.compile(
    r"(^|/)(setup\.py|setup\.cfg|pyproject[^/]*\.toml|pixi\.toml|\.gitmodules|[^/]*\.(txt|in|ya?ml))$")


def norm(text: str) -> str:
    """Lower case, with '-', '_' and '.' alike (as package names compare)."""
    return re.sub(r"[-_.]+", "-", text.lower())


def lines_of(repo: CorpusRepo, ref: str) -> str:
    """The text of the line a ``file:line`` reference names; fails the test when there is none."""
    path, number = parse_ref(ref)
    assert path in repo.source["copied"], f"{repo.name}: {ref} names a file that was not copied"
    lines = (repo.path / path).read_text(encoding="utf-8").splitlines()
    assert 1 <= number <= len(lines), f"{repo.name}: {ref} is past the end ({len(lines)} lines)"
    return lines[number - 1]


def assert_keys(repo: CorpusRepo, where: str, table: Any, schema: type) -> None:
    unknown = set(table) - set(schema.__annotations__)
    assert not unknown, f"{repo.name}: {where} has fields the corpus README lacks: {sorted(unknown)}"


@pytest.fixture(params=REPOS, ids=[r.name for r in REPOS])
def repo(request: pytest.FixtureRequest) -> CorpusRepo:
    return request.param  # type: ignore[no-any-return]


def test_the_corpus_has_at_least_thirty_repositories() -> None:
    assert len(REPOS) >= 30
    assert (CORPUS / "README.md").is_file()


def test_every_repository_appears_once_in_the_readme_table() -> None:
    readme = (CORPUS / "README.md").read_text(encoding="utf-8")
    for r in REPOS:
        assert readme.count(f"| {r.source['repo']} |") == 1, f"{r.source['repo']} is not in the table once"
        assert r.source["commit"][:12] in readme, f"{r.name}: the table does not give its commit"


def test_source_names_the_repository_its_commit_and_an_allowed_licence(repo: CorpusRepo) -> None:
    source = repo.source
    assert_keys(repo, "SOURCE.toml", source, Source)
    owner, _, name = source["repo"].partition("/")
    assert repo.name == f"{owner}__{name}"
    assert re.fullmatch(r"[0-9a-f]{40}", source["commit"]), source["commit"]
    assert source["license"] in ALLOWED_LICENSES, source["license"]
    assert source["license_file"], "the licence file's path in the real repository"
    for day in (source["date"], source["commit_date"]):
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", day), day
    for sub in source.get("submodules", []):
        assert_keys(repo, "[[submodules]]", sub, Submodule)
        assert isinstance(sub["gitlink"], bool) and sub["path"]
    for folder in source.get("local_folders", []):
        assert_keys(repo, "[[local_folders]]", folder, LocalFolder)
        assert folder["path"] and folder["cuda_files"] >= 0


def test_the_folder_holds_exactly_the_copied_install_files(repo: CorpusRepo) -> None:
    copied = repo.source["copied"]
    assert copied and len(set(copied)) == len(copied)
    present = {str(p.relative_to(repo.path)) for p in repo.path.rglob("*") if p.is_file()}
    assert present - BOOKKEEPING == set(copied)
    assert present >= BOOKKEEPING
    for rel in copied:
        assert INSTALL_FILE.search(rel), f"{repo.name}: {rel} is not an install file (no sources here)"
        assert (repo.path / rel).stat().st_size <= MAX_BYTES, f"{repo.name}: {rel} is over 200 KB"


def test_every_file_line_reference_names_what_it_is_cited_for(repo: CorpusRepo) -> None:
    expected: Expected = repo.expected
    assert_keys(repo, "expected.toml", expected, Expected)

    torch = expected.get("torch", {})
    assert_keys(repo, "[torch]", torch, Torch)
    if "requirement" in torch:
        assert Requirement(torch["requirement"]).name == "torch"
        assert "torch" in norm(lines_of(repo, torch["source"]))
    if "cuda" in torch or "cuda_requirement" in torch:
        version = torch.get("cuda") or re.sub(r"^[<>=!~ ]+", "", torch["cuda_requirement"])
        line = lines_of(repo, torch.get("cuda_source", torch.get("source", "")))
        assert version in line or "cu" + version.replace(".", "") in line, f"{repo.name}: {line!r}"

    python = expected.get("python", {})
    assert_keys(repo, "[python]", python, Python)
    if "requirement" in python:
        SpecifierSet(python["requirement"])
        assert "python" in lines_of(repo, python["source"]).lower()

    build = expected.get("repo", {})
    assert_keys(repo, "[repo]", build, RepoBuild)
    if "source" in build:
        assert build.get("builds_cuda") is True
        assert "cuda" in lines_of(repo, build["source"]).lower()

    for conflict in expected.get("conflicts", []):
        assert_keys(repo, "[[conflicts]]", conflict, Conflict)
        assert len(conflict["between"]) >= 2
        for ref in conflict["between"]:
            assert norm(conflict["package"]) in norm(lines_of(repo, ref)), f"{repo.name}: {ref}"

    for other in expected.get("not_a_catalog_package", []):
        assert_keys(repo, "[[not_a_catalog_package]]", other, NotACatalogPackage)
        assert norm(other["name"]) in norm(lines_of(repo, other["source"]))

    for blocker in expected.get("blockers", []):
        assert_keys(repo, "[[blockers]]", blocker, Blocker)
        assert blocker["what"]


def test_each_extension_is_where_its_source_says(repo: CorpusRepo) -> None:
    folders = {f["path"] for f in repo.source.get("local_folders", [])}
    gitlinks = {s["path"] for s in repo.source.get("submodules", []) if s["gitlink"]}
    for ext in repo.expected.get("extensions", []):
        assert_keys(repo, "[[extensions]]", ext, Extension)
        name, kind = ext["name"], ext["kind"]
        assert kind in KINDS, kind
        if kind == "local" and name in folders:
            if "source" in ext:
                assert parse_ref(ext["source"])[0].startswith(name + "/"), f"{repo.name}: {ext['source']}"
        elif kind == "local":
            # a path requirement such as 'apex @ file:///...': the line names it
            assert norm(name) in norm(lines_of(repo, ext["source"]))
        elif kind == "submodule":
            assert name in gitlinks, f"{repo.name}: {name} is no gitlink of the real tree (SOURCE.toml)"
            assert name in lines_of(repo, ext["source"])
        else:
            line = norm(lines_of(repo, ext["source"]))
            assert norm(name) in line or norm(ext.get("requirement", name)) in line, f"{repo.name}: {name}"


def test_each_file_entry_is_a_copied_file_with_a_known_role(repo: CorpusRepo) -> None:
    paths = [f["path"] for f in repo.expected.get("files", [])]
    assert len(set(paths)) == len(paths)
    for entry in repo.expected.get("files", []):
        assert_keys(repo, "[[files]]", entry, RequirementsFile)
        assert entry["path"] in repo.source["copied"], entry["path"]
        assert entry["role"] in ROLES, entry["role"]
        assert entry["why"]


def test_every_requirements_file_and_conda_file_is_accounted_for(repo: CorpusRepo) -> None:
    """A requirements or conda file the repo has is never silently missing from expected [[files]]."""
    listed = {f["path"] for f in repo.expected.get("files", [])}
    for rel in repo.source["copied"]:
        base = Path(rel).name
        if (base.startswith("requirements") or rel.startswith("requirements/") or "/requirements/" in rel
                or base.endswith((".yml", ".yaml"))):
            assert rel in listed, f"{repo.name}: {rel} has no [[files]] entry"
