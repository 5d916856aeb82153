"""Run ``gpuenv init`` and ``gpuenv plan`` on a corpus repository and compare with its expected facts.

The copy is made the way a fresh clone would look: the files, a git index holding the gitlinks
SOURCE.toml records (``git update-index --cacheinfo 160000,…``) with their empty folders. Each
expected fact becomes one :class:`Fact`: what the careful reader says, what gpuenv made of it, and
whether they agree. Run as a script, it prints the table for the whole corpus.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name

from gpuenv.init.reposcan import RepoScan
from gpuenv.init.writer import init_repo
from gpuenv.load.recipe import load_recipe
from gpuenv.load.treefacts import recipe_tree
from gpuenv.load.treemeta import recipe_sources
from gpuenv.plan import knowledge
from gpuenv.plan.buildfiles.conditions import Context
from gpuenv.plan.envplan import Plan
from gpuenv.plan.hardware import Hardware, hardware_from_json
from gpuenv.plan.planner import PlanOptions, make_plan
from gpuenv.plan.recipespec import Recipe
from gpuenv.plan.sourcetrees import BUILD_ENV
from tests.corpus import CorpusRepo, load_corpus

#: One A100 node whose driver runs every CUDA 12 and 13 build, with the toolkits research repos ask for.
HARDWARE = {
    "driver_version": "580.65.06",
    "cuda_driver_version": "13.0",
    "gpus": [{"name": "NVIDIA A100-SXM4-80GB", "compute_capability": "8.0"}],
    "cpu_count": 32,
    "memory_total_mib": 262144,
    "memory_available_mib": 250000,
    "toolkits": [
        {"nvcc": f"/opt/cuda-{v}/bin/nvcc", "version": v}
        for v in ("11.3", "11.6", "11.7", "11.8", "12.1", "12.4", "12.6", "12.8", "13.0")
    ],
}


@dataclass(frozen=True)
class Fact:
    repo: str
    key: str
    expected: str
    got: str
    agrees: bool


@dataclass
class Outcome:
    scan: RepoScan | None
    recipe: Recipe | None
    plan: Plan | None
    error: str = ""


def hardware() -> Hardware:
    return hardware_from_json(HARDWARE)


def clone(repo: CorpusRepo, target: Path) -> Path:
    """The repository as a fresh clone has it: files, the gitlinks in a git index, their empty folders."""
    shutil.copytree(repo.path, target, ignore=shutil.ignore_patterns("SOURCE.toml", "expected.toml"))
    links = [s for s in repo.source.get("submodules", []) if s.get("gitlink")]
    if links and shutil.which("git"):
        subprocess.run(["git", "init", "-q", str(target)], check=True, timeout=60)
        for sub in links:
            subprocess.run(
                [
                    "git",
                    "-C",
                    str(target),
                    "update-index",
                    "--add",
                    "--cacheinfo",
                    f"160000,{sub['gitlink_commit']},{sub['path']}",
                ],
                check=True,
                timeout=60,
            )
            (target / sub["path"]).mkdir(parents=True, exist_ok=True)
    return target


def run(repo: CorpusRepo, tmp: Path) -> Outcome:
    root = clone(repo, tmp / repo.name)
    try:
        result = init_repo(root, origin="gpuenv")
        recipe = load_recipe(result.recipe)
        options = PlanOptions(sources=recipe_sources(recipe), tree=recipe_tree(recipe))
        return Outcome(result.scan, recipe, make_plan(recipe, hardware(), options))
    except Exception as exc:  # a failure is a fact of the table, the test asserts on its kind
        from gpuenv.errors import GpuenvError

        if not isinstance(exc, GpuenvError):
            raise
        return Outcome(None, None, None, f"{type(exc).__name__}: {exc}")


def facts(repo: CorpusRepo, out: Outcome) -> list[Fact]:
    expected = repo.expected
    found: list[Fact] = []

    def fact(key: str, want: object, got: object, agrees: bool) -> None:
        found.append(Fact(repo.name, key, str(want), str(got), agrees))

    scan, plan, recipe = out.scan, out.plan, out.recipe
    if scan is None or plan is None or recipe is None:
        fact("init and plan", "a plan", out.error, False)
        return found
    torch = expected.get("torch", {})
    if "requirement" in torch:
        want = _spec(torch["requirement"].removeprefix("torch"))
        fact("torch", want or "torch", scan.torch_version or "", want == _spec(scan.torch_version or ""))
    if "cuda" in torch or "cuda_requirement" in torch or torch:
        want_cuda = knowledge.normalize_variant(torch["cuda"]) if "cuda" in torch else None
        fact(
            "torch.cuda",
            want_cuda or f"none ({torch.get('cuda_requirement', 'not stated')})",
            scan.cuda,
            want_cuda == scan.cuda,
        )
    python = expected.get("python", {})
    if "requirement" in python:
        want = _spec(python["requirement"])
        got = _spec(
            f"=={scan.python}.*"
            if scan.python and re.fullmatch(r"\d+\.\d+", scan.python)
            else scan.python or ""
        )
        fact("python", want, scan.python, want == got)
    build = expected.get("repo", {})
    setup = scan.setup
    if "builds_cuda" in build:
        builds = bool(setup and setup.builds_cuda)
        fact("repo.builds_cuda", build["builds_cuda"], builds, builds == build["builds_cuda"])
        if build["builds_cuda"] and recipe.repo is not None:
            planned = plan.repo_build is not None and plan.repo_build.compiles_cuda
            fact("repo.build planned", True, planned, planned)
    if "cuda_only_when_visible" in build and build.get("builds_cuda"):
        visible = bool(setup and setup.only_when_visible)
        fact(
            "repo.cuda_only_when_visible",
            build["cuda_only_when_visible"],
            visible,
            visible == build["cuda_only_when_visible"],
        )
    if "cuda_opt_in" in build and setup is not None and setup.build is not None:
        opt_in = all(
            e.condition.value(Context(gpu=True, env=dict(BUILD_ENV), options=frozenset())) is not True
            for e in setup.build.cuda_extensions
        )
        fact("repo.cuda_opt_in", build["cuda_opt_in"], opt_in, opt_in == build["cuda_opt_in"])
    blockers = [str(b.error) for b in plan.blockers]
    required = {e["name"] for e in expected.get("extensions", []) if not e.get("optional")}
    for ext in expected.get("extensions", []):
        if ext.get("optional") and ext["name"] in required:
            continue  # the same package is also a dependency of the install itself
        found.append(_extension(repo.name, ext, recipe, blockers))
    roles = {a.path: a.role for a in scan.files}
    for f in expected.get("files", []):
        fact(
            f"file {f['path']}",
            f["role"],
            roles.get(f["path"], "not accounted"),
            roles.get(f["path"]) == f["role"],
        )
    for c in expected.get("conflicts", []):
        name = str(canonicalize_name(c["package"]))
        said = [x for x in scan.conflicts if str(canonicalize_name(x.split(":", 1)[0])) == name]
        files = {ref.split(":")[0] for ref in c["between"]}
        named = [x for x in said if all(f in x for f in files)]  # between the files the reader names
        fact(f"conflict {name}", "reported", (named or said or ["not reported"])[0], bool(named))
    for b in expected.get("blockers", []):
        paths = _paths(b["what"])
        # Each path the reader names must be a blocker ("submodules a and b are not checked out").
        every = all(any(p in x for x in blockers) for p in paths[1:])
        hit = [x for x in blockers if paths and paths[0] in x and every]
        fact(
            f"blocker {paths[0] if paths else b['what'][:40]}",
            "a blocker",
            hit[0][:100] if hit else "none",
            bool(hit),
        )
    for n in expected.get("not_a_catalog_package", []):
        name = str(canonicalize_name(n["name"]))
        planned = [e.requirement for e in recipe.extensions if e.name == name]
        fact(f"not an extension: {name}", "not built as an extension", planned or "not built", not planned)
    return found


def _extension(repo: str, ext: dict[str, object], recipe: Recipe, blockers: list[str]) -> Fact:
    kind, name, optional = str(ext.get("kind")), str(ext["name"]), bool(ext.get("optional"))
    if kind in ("local", "submodule"):
        path = (recipe.root.parent / name).resolve()
        planned = any(e.path is not None and e.path.resolve() == path for e in recipe.extensions)
        blocked = any(name in b for b in blockers)
        got = (
            "in the recipe"
            if planned
            else ("a blocker until checked out" if blocked else "not in the recipe")
        )
        agrees = planned or blocked if not optional else not planned
    else:
        canonical = str(canonicalize_name(name))
        planned = any(e.name == canonical for e in recipe.extensions)
        got = "in the recipe" if planned else "not in the recipe"
        agrees = planned != optional
    want = f"{kind}{', optional' if optional else ''}"
    return Fact(repo, f"extension {name}", want, got, agrees)


def _spec(text: str) -> str:
    text = re.sub(r"\+[A-Za-z0-9.]+", "", text.strip())
    try:
        return str(SpecifierSet(text))
    except InvalidSpecifier:
        return text


def _paths(what: str) -> list[str]:
    """The paths a blocker's words name ("submodule thirdparty/lietorch is not checked out" → that path)."""
    match = re.match(r"submodules? (.+?) (?:is|are) not checked out", what)
    if match is None:
        path = re.search(r"[\w.-]+/[\w./-]*[\w-]", what)
        return [path[0]] if path else []
    return [p.strip() for p in re.split(r",| and ", match[1]) if p.strip()]


def main() -> None:
    import tempfile

    rows: list[Fact] = []
    with tempfile.TemporaryDirectory() as tmp:
        for repo in load_corpus():
            rows += facts(repo, run(repo, Path(tmp)))
    for row in rows:
        mark = "ok  " if row.agrees else "MISS"
        print(f"{mark} {row.repo:40} {row.key:45} expected {row.expected!s:30.30} got {row.got!s:.80}")
    agreed = sum(r.agrees for r in rows)
    print(f"{agreed} of {len(rows)} facts reach the plan ({len({r.repo for r in rows})} repositories)")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parents[3]))
    main()
