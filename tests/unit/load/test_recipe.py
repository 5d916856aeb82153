"""Recipes: what valid files become, and the exact error every malformed one gets."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from packaging.requirements import InvalidRequirement, Requirement

from gpuenv.errors import RecipeError
from gpuenv.load.recipe import find_recipe, load_recipe, parse_recipe
from gpuenv.plan.extensionspec import ExtensionSpec
from gpuenv.plan.recipespec import Recipe
from gpuenv.plan.torchspec import DEFAULT_INDEX, TorchSpec

ENVS = Path(__file__).resolve().parents[3] / "envs"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def recipe_with_torch(tmp_path: Path, torch_body: str) -> Recipe:
    return load_recipe(write(tmp_path / "r.toml", "[torch]\n" + textwrap.dedent(torch_body)))


def one_extension(tmp_path: Path, requirement: str) -> ExtensionSpec:
    text = f'[torch]\nversion = "2.14.*"\n[[extensions]]\nrequirement = "{requirement}"\n'
    (extension,) = load_recipe(write(tmp_path / "r.toml", text)).extensions
    return extension


# -- valid recipes ---------------------------------------------------------------------


def test_minimal_recipe_takes_every_default(tmp_path: Path) -> None:
    path = write(tmp_path / "vision.toml", '[torch]\nversion = "2.14.*"\n')

    assert load_recipe(path) == Recipe(
        path=path,
        name="vision",
        description="",
        torch=TorchSpec(version="==2.14.*", cuda="auto", index=DEFAULT_INDEX, index_given=False),
    )


def test_full_recipe(tmp_path: Path) -> None:
    (tmp_path / "vendor" / "My_Kernels").mkdir(parents=True)
    path = write(
        tmp_path / "envs" / "llm.toml",
        """\
        [env]
        name = "llm-train"
        description = "Training stack with flash-attn"

        [torch]
        version = "2.13.0"
        cuda = "12.6"
        index = "https://mirror.example/torch/{variant}/simple"
        packages = ["torchvision==0.28.*", "torchaudio"]

        [[extensions]]
        requirement = "flash-attn==2.8.3.post2"
        env = { NVCC_THREADS = "2", MAX_JOBS = "4" }
        build-requires = ["einops", "psutil>=5"]
        required = true
        import = "flash_attn"

        [[extensions]]
        requirement = "../vendor/My_Kernels"
        import = "my_kernels.ops"

        [packages]
        requirements = ["transformers>=4.40", "datasets"]
        """,
    )

    assert load_recipe(path) == Recipe(
        path=path,
        name="llm-train",
        description="Training stack with flash-attn",
        torch=TorchSpec(
            version="==2.13.0",
            cuda="cu126",
            index="https://mirror.example/torch/{variant}/simple",
            index_given=True,
            packages=("torchvision==0.28.*", "torchaudio"),
        ),
        extensions=(
            ExtensionSpec(
                requirement="flash-attn==2.8.3.post2",
                name="flash-attn",
                env=(("NVCC_THREADS", "2"), ("MAX_JOBS", "4")),
                build_requires=("einops", "psutil>=5"),
                required=True,
                import_name="flash_attn",
            ),
            ExtensionSpec(
                requirement="../vendor/My_Kernels",
                name="my-kernels",
                import_name="my_kernels.ops",
                path=(tmp_path / "vendor" / "My_Kernels").resolve(),
            ),
        ),
        packages=("transformers>=4.40", "datasets"),
    )


@pytest.mark.parametrize(
    ("written", "stored"),
    [
        ("2.4.1", "==2.4.1"),
        ("2.4.*", "==2.4.*"),
        (" 2.14.1 ", "==2.14.1"),
        ("v2.4.1", "==2.4.1"),
        ("2.15.0rc1", "==2.15.0rc1"),
        (">=2.4,<2.6", ">=2.4,<2.6"),
        ("~=2.13.0", "~=2.13.0"),
        ("==2.14.*", "==2.14.*"),
    ],
)
def test_torch_version_becomes_a_specifier(tmp_path: Path, written: str, stored: str) -> None:
    assert recipe_with_torch(tmp_path, f'version = "{written}"').torch.version == stored


@pytest.mark.parametrize(
    ("written", "stored"),
    [
        ("auto", "auto"),
        ("cpu", "cpu"),
        ("CPU", "cpu"),
        ("12.1", "cu121"),
        ("13.0", "cu130"),
        ("11.8", "cu118"),
        ("cu121", "cu121"),
        ("cu130", "cu130"),
    ],
)
def test_cuda_is_normalised(tmp_path: Path, written: str, stored: str) -> None:
    assert recipe_with_torch(tmp_path, f'version = "2.14.*"\ncuda = "{written}"').torch.cuda == stored


def test_index_can_be_an_absolute_path_or_a_file_url(tmp_path: Path) -> None:
    local = recipe_with_torch(tmp_path, 'version = "2.14.*"\nindex = "/srv/wheels/{variant}"')
    fixed = recipe_with_torch(tmp_path, 'version = "2.14.*"\nindex = "file:///srv/wheels/cpu"')

    assert (local.torch.index, local.torch.index_given) == ("/srv/wheels/{variant}", True)
    assert (fixed.torch.index, fixed.torch.index_given) == ("file:///srv/wheels/cpu", True)


@pytest.mark.parametrize(
    ("requirement", "name"),
    [
        ("./ext", "ext"),
        ("ext", None),  # not a path: a PyPI name
        ("Fused_Ops @ file://{root}/ext", "fused-ops"),
        ("fused-ops @ file:ext", "fused-ops"),
        ("{root}/ext", "ext"),
    ],
)
def test_local_paths_resolve_against_the_recipe(tmp_path: Path, requirement: str, name: str | None) -> None:
    (tmp_path / "ext").mkdir()
    text = requirement.format(root=tmp_path)

    ext = one_extension(tmp_path, text)

    assert ext.requirement == text
    if name is None:
        assert (ext.name, ext.path) == ("ext", None)
    else:
        assert (ext.name, ext.path) == (name, tmp_path / "ext")


def test_a_local_path_is_relative_to_the_recipe_not_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "project" / "csrc").mkdir(parents=True)
    path = write(
        tmp_path / "project" / "envs" / "dev.toml",
        '[torch]\nversion = "2.14.*"\n[[extensions]]\nrequirement = "../csrc"\n',
    )
    monkeypatch.chdir(tmp_path)

    assert load_recipe(Path("project/envs/dev.toml")).extensions[0].path == tmp_path / "project" / "csrc"
    assert path.exists()


@pytest.mark.parametrize(
    ("requirement", "name"),
    [
        ("git+https://github.com/NVIDIA/apex.git", "apex"),
        ("git+https://github.com/NVIDIA/apex.git@25.09", "apex"),
        ("git+https://github.com/NVIDIA/apex@release/25.09", "apex"),
        ("git+ssh://git@github.com/NVIDIA/apex.git@master", "apex"),
        ("git+https://github.com/org/mono.git#subdirectory=kernels/Fast_Ops", "fast-ops"),
        ("git+https://github.com/org/mono.git#egg=Fast_Ops", "fast-ops"),
        ("apex @ git+https://github.com/NVIDIA/apex.git@master", "apex"),
    ],
)
def test_git_requirements_are_named_after_the_repository(tmp_path: Path, requirement: str, name: str) -> None:
    ext = one_extension(tmp_path, requirement)

    assert (ext.name, ext.path) == (name, None)


def test_extension_names_are_canonical(tmp_path: Path) -> None:
    assert one_extension(tmp_path, "Torch_Scatter>=2").name == "torch-scatter"


def test_pyproject_tool_gpuenv_table(tmp_path: Path) -> None:
    path = write(
        tmp_path / "pyproject.toml",
        """\
        [project]
        name = "my-research"

        [tool.gpuenv.torch]
        version = "2.14.1"
        packages = ["torchvision"]

        [[tool.gpuenv.extensions]]
        requirement = "torch-scatter==2.1.2"
        """,
    )

    assert load_recipe(path) == Recipe(
        path=path,
        name="my-research",
        description="",
        torch=TorchSpec(version="==2.14.1", packages=("torchvision",)),
        extensions=(ExtensionSpec(requirement="torch-scatter==2.1.2", name="torch-scatter"),),
        table="tool.gpuenv",
    )


def test_pyproject_without_a_project_name_is_named_after_its_directory(tmp_path: Path) -> None:
    path = write(tmp_path / "lab" / "pyproject.toml", '[tool.gpuenv.torch]\nversion = "2.14.*"\n')

    assert load_recipe(path).name == "lab"


def test_parse_recipe_takes_parsed_data(tmp_path: Path) -> None:
    data = {"torch": {"version": "2.14.*", "cuda": "cpu"}, "env": {"description": "CI"}}

    recipe = parse_recipe(data, tmp_path / "ci.toml")

    assert (recipe.name, recipe.description, recipe.torch.cuda, recipe.table) == ("ci", "CI", "cpu", None)


# -- the shipped recipes ------------------------------------------------------------------


SHIPPED = sorted(ENVS.glob("*.toml"))


def test_the_shipped_recipes_are_there() -> None:
    assert {p.stem for p in SHIPPED} >= {"default", "llm", "graph", "mamba", "apex"}


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_shipped_recipe_loads(path: Path) -> None:
    recipe = load_recipe(path)

    assert recipe.name == path.stem
    assert recipe.description
    assert path.read_text(encoding="utf-8").startswith("# "), "each recipe says what it is for"


def test_llm_recipe_pins_a_torch_flash_attn_compiles_against() -> None:
    recipe = load_recipe(ENVS / "llm.toml")

    assert recipe.torch.version == "==2.13.*"
    assert [(e.name, e.import_name) for e in recipe.extensions] == [("flash-attn", "flash_attn")]


def test_apex_recipe_builds_from_git_not_pypi() -> None:
    (apex,) = load_recipe(ENVS / "apex.toml").extensions

    assert apex.name == "apex"
    assert Requirement(apex.requirement).url is not None


# -- finding the recipe ---------------------------------------------------------------------


def test_find_recipe_prefers_envs_default(tmp_path: Path) -> None:
    default = write(tmp_path / "envs" / "default.toml", '[torch]\nversion = "2.14.*"\n')
    write(tmp_path / "pyproject.toml", '[tool.gpuenv.torch]\nversion = "2.13.*"\n')

    assert find_recipe(tmp_path) == default


def test_find_recipe_falls_back_to_pyproject_from_a_subdirectory(tmp_path: Path) -> None:
    pyproject = write(tmp_path / "pyproject.toml", '[tool.gpuenv.torch]\nversion = "2.13.*"\n')
    (tmp_path / "src" / "pkg").mkdir(parents=True)

    assert find_recipe(tmp_path / "src" / "pkg").resolve() == pyproject.resolve()


def test_find_recipe_stops_at_the_project_root(tmp_path: Path) -> None:
    write(tmp_path / "envs" / "default.toml", '[torch]\nversion = "2.14.*"\n')
    write(tmp_path / "inner" / "pyproject.toml", '[project]\nname = "inner"\n')

    with pytest.raises(RecipeError) as caught:
        find_recipe(tmp_path / "inner")

    assert str(caught.value) == (
        f"{tmp_path / 'inner'}: no recipe found "
        "(looked for envs/default.toml and a [tool.gpuenv] table in pyproject.toml)"
    )
    assert caught.value.hint == "create one with 'gpuenv init' or pass -r FILE"
    assert caught.value.exit_code == 2


def test_load_recipe_of_a_directory_finds_its_recipe(tmp_path: Path) -> None:
    write(tmp_path / "envs" / "default.toml", '[torch]\nversion = "2.14.*"\n')

    assert load_recipe(tmp_path).name == "default"


# -- malformed recipes: the exact message -----------------------------------------------------

_EXAMPLES = '"2.14.1", "2.14.*" or ">=2.13,<2.15"'
_TORCH = '[torch]\nversion = "2.14.*"\n'


def _pep508_reason(text: str) -> str:
    # packaging words its parse errors itself (and has reworded them between releases).
    try:
        Requirement(text)
    except InvalidRequirement as exc:
        return str(exc).splitlines()[0]
    raise AssertionError(f"{text!r} parses")


MALFORMED = [
    pytest.param(
        '[torch]\nverison = "2.4"\n',
        "{path}: torch.verison: unknown key (did you mean 'version'?)",
        id="unknown-key-close",
    ),
    pytest.param(
        _TORCH + "[[extension]]\nrequirement = 'flash-attn'\n",
        "{path}: extension: unknown key (did you mean 'extensions'?)",
        id="unknown-top-level-key",
    ),
    pytest.param(
        _TORCH + '[[extensions]]\nname = "flash-attn"\n',
        "{path}: extensions[0].name: unknown key "
        "(valid keys: arch-format, arch-knob, build-options, build-requires, env, fixed-archs, force-build, "
        "import, min-compute-capability, min-nvcc, prebuilt, required, requirement)",
        id="unknown-key-no-match",
    ),
    pytest.param(
        _TORCH + '[[extensions]]\nrequirement = "x"\nbuild-options = ["cpp_ext"]\n',
        "{path}: extensions[0].build-options[0]: 'cpp_ext' is not one command-line option "
        "such as \"--cpp_ext\"",
        id="build-option-not-an-option",
    ),
    pytest.param(
        _TORCH + '[[extensions]]\nrequirement = "x"\nbuild_requires = ["einops"]\n',
        "{path}: extensions[0].build_requires: unknown key (did you mean 'build-requires'?)",
        id="underscore-key",
    ),
    pytest.param(
        '[torch]\nversion = "2.4"\nversion = "2.5"\n',
        "{path}: not valid TOML at line 3, column 16: Cannot overwrite a value",
        id="not-toml",
    ),
    pytest.param(
        '[env]\ndescription = "no torch"\n',
        '{path}: torch: missing; every recipe needs a [torch] table with at least version = "2.14.*"',
        id="missing-torch",
    ),
    pytest.param(
        '[torch]\nuse = "exsting"\n',
        '{path}: torch.use: \'exsting\' is neither "install" (gpuenv installs torch) nor "existing" '
        "(the torch already in the env) (did you mean 'existing'?)",
        id="use-typo",
    ),
    pytest.param(
        '[torch]\nuse = "existing"\ncuda = "12.1"\n',
        '{path}: torch.cuda: with use = "existing" the CUDA build is the torch\'s own: remove cuda (or write '
        'cuda = "auto")',
        id="use-existing-with-cuda",
    ),
    pytest.param(
        '[torch]\nuse = "existing"\nindex = "https://download.pytorch.org/whl/{variant}"\n',
        '{path}: torch.index: with use = "existing" gpuenv installs no torch: remove index',
        id="use-existing-with-index",
    ),
    pytest.param(
        '[torch]\ncuda = "12.1"\n',
        '{path}: torch.version: missing; write the torch to install, e.g. version = "2.14.*" '
        '(or use = "existing" to build against the torch of the env you point gpuenv at)',
        id="missing-version",
    ),
    pytest.param(
        '[torch]\nversion = "2.4.x"\n',
        f"{{path}}: torch.version: '2.4.x' is not a PEP 440 version; write e.g. {_EXAMPLES}",
        id="bad-version",
    ),
    pytest.param(
        '[torch]\nversion = ">=2.4,<<2.6"\n',
        f"{{path}}: torch.version: '<<2.6' in '>=2.4,<<2.6' is not a valid specifier; write e.g. {_EXAMPLES}",
        id="bad-specifier-clause",
    ),
    pytest.param(
        '[torch]\nversion = ""\n',
        f"{{path}}: torch.version: is empty; write e.g. {_EXAMPLES}",
        id="empty-version",
    ),
    pytest.param(
        '[torch]\nversion = "torch>=2.4"\n',
        "{path}: torch.version: 'torch>=2.4' names a package, not a version; "
        'write only the version or specifier: version = ">=2.4"',
        id="version-with-name",
    ),
    pytest.param(
        '[torch]\nversion = "2.4.1+cu121"\n',
        "{path}: torch.version: '2.4.1+cu121' has a local label (+cu121); "
        'choose the build with torch.cuda instead: version = "2.4.1" and cuda = "cu121"',
        id="local-label",
    ),
    pytest.param(
        "[torch]\nversion = 2.4\n",
        '{path}: torch.version: expected a string, got a float; quote it: version = "..."',
        id="unquoted-version",
    ),
    pytest.param(
        '[torch]\nversion = "2.14.*"\ncuda = "12"\n',
        "{path}: torch.cuda: '12' is not a CUDA choice; "
        'write "auto", "cpu", a CUDA version such as "12.1" or a variant such as "cu121"',
        id="bad-cuda",
    ),
    pytest.param(
        '[torch]\nversion = "2.14.*"\nindex = "https://mirror/{variant}/{arch}"\n',
        "{path}: torch.index: 'https://mirror/{variant}/{arch}' has an unknown placeholder {arch}; "
        "only {variant} is replaced (by e.g. cu121 or cpu)",
        id="index-placeholder",
    ),
    pytest.param(
        '[torch]\nversion = "2.14.*"\nindex = "download.pytorch.org/whl/{variant}"\n',
        "{path}: torch.index: 'download.pytorch.org/whl/{variant}' is not a URL; "
        "write an http(s):// or file:// URL or an absolute path, "
        'e.g. "https://download.pytorch.org/whl/{variant}"',
        id="index-not-url",
    ),
    pytest.param(
        '[torch]\nversion = "2.14.*"\npackages = "torchvision"\n',
        "{path}: torch.packages: expected an array of strings, got a string; "
        'write packages = ["torchvision"]',
        id="packages-string",
    ),
    pytest.param(
        '[torch]\nversion = "2.14.*"\npackages = ["torchvision", 2]\n',
        "{path}: torch.packages[1]: expected a string, got an integer; quote it: packages[1] = \"2\"",
        id="packages-item-type",
    ),
    pytest.param(
        _TORCH + '[packages]\nrequirements = ["torch==2.13"]\n',
        "{path}: packages.requirements[0]: torch is set by torch.version; list only other packages here",
        id="torch-in-packages",
    ),
    pytest.param(
        _TORCH + 'torch = "x"\n',
        "{path}: torch.torch: unknown key (valid keys: cuda, index, packages, toolkit, use, version)",
        id="unknown-torch-key",
    ),
    pytest.param(
        _TORCH + "[extensions]\nrequirement = 'flash-attn'\n",
        "{path}: extensions: expected an array of tables, got a table; write each as [[extensions]]",
        id="extensions-table",
    ),
    pytest.param(
        _TORCH + "[[extensions]]\nimport = 'flash_attn'\n",
        '{path}: extensions[0].requirement: missing; write what to build, e.g. requirement = "flash-attn"',
        id="missing-requirement",
    ),
    pytest.param(
        _TORCH + '[[extensions]]\nrequirement = "flash-attn=2.8"\n',
        "{path}: extensions[0].requirement: 'flash-attn=2.8' is not a valid PEP 508 requirement: "
        + _pep508_reason("flash-attn=2.8")
        + " (did you mean 'flash-attn==2.8'?)",
        id="bad-pep508",
    ),
    pytest.param(
        _TORCH + '[[extensions]]\nrequirement = "flash-attn"\n'
        '[[extensions]]\nrequirement = "Flash_Attn>=2"\n',
        "{path}: extensions[1].requirement: flash-attn is already listed as extensions[0]; "
        "list each extension once",
        id="duplicate-extension",
    ),
    pytest.param(
        _TORCH + '[[extensions]]\nrequirement = "torch==2.14.1"\n',
        "{path}: extensions[0].requirement: torch is never built as an extension: "
        "it is installed from [torch] (set torch.version there)",
        id="torch-extension",
    ),
    pytest.param(
        _TORCH + '[[extensions]]\nrequirement = "flash-attn"\nenv = { NVCC_THREADS = 2 }\n',
        "{path}: extensions[0].env.NVCC_THREADS: expected a string, got an integer; "
        'quote it: NVCC_THREADS = "2"',
        id="env-int",
    ),
    pytest.param(
        _TORCH + '[[extensions]]\nrequirement = "flash-attn"\nenv = { FLASH_ATTENTION_FORCE_BUILD = true }\n',
        "{path}: extensions[0].env.FLASH_ATTENTION_FORCE_BUILD: expected a string, got a boolean; "
        'quote the value the build expects, e.g. FLASH_ATTENTION_FORCE_BUILD = "1" or "TRUE"',
        id="env-bool",
    ),
    pytest.param(
        _TORCH + '[[extensions]]\nrequirement = "flash-attn"\nenv = { "NVCC THREADS" = "2" }\n',
        "{path}: extensions[0].env.\"NVCC THREADS\": not an environment variable name "
        "(letters, digits and '_', no digit first)",
        id="env-name",
    ),
    pytest.param(
        _TORCH + '[[extensions]]\nrequirement = "flash-attn"\nenv = "NVCC_THREADS=2"\n',
        "{path}: extensions[0].env: expected a table, got a string",
        id="env-not-table",
    ),
    pytest.param(
        _TORCH + '[[extensions]]\nrequirement = "flash-attn"\nbuild-requires = ["torch"]\n',
        "{path}: extensions[0].build-requires[0]: torch is never a build requirement: "
        "extensions build against the torch of [torch]",
        id="torch-build-requirement",
    ),
    pytest.param(
        _TORCH + '[[extensions]]\nrequirement = "flash-attn"\nrequired = "true"\n',
        "{path}: extensions[0].required: expected a boolean (true or false), got a string; "
        "write required = true without quotes",
        id="required-string",
    ),
    pytest.param(
        _TORCH + '[[extensions]]\nrequirement = "flash-attn"\nimport = "flash-attn"\n',
        "{path}: extensions[0].import: 'flash-attn' is not a Python module name; "
        "write a dotted name such as \"flash_attn\" (did you mean 'flash_attn'?)",
        id="bad-import",
    ),
    pytest.param(
        _TORCH + '[[extensions]]\nrequirement = "./csrc"\n',
        "{path}: extensions[0].requirement: './csrc' does not exist (looked for {dir}/csrc)",
        id="missing-path",
    ),
    pytest.param(
        _TORCH + '[[extensions]]\nrequirement = "https://example.org/ops-1.0.tar.gz"\n',
        "{path}: extensions[0].requirement: 'https://example.org/ops-1.0.tar.gz' is a URL without a name; "
        "write it as 'NAME @ https://example.org/ops-1.0.tar.gz'",
        id="url-without-name",
    ),
    pytest.param(
        _TORCH + '[env]\nname = "my env"\n',
        "{path}: env.name: 'my env' is not an environment name; use letters, digits, '.', '_' and '-'",
        id="bad-env-name",
    ),
    pytest.param(
        'packages = ["transformers"]\n' + _TORCH,
        "{path}: packages: expected a table, got an array; write [packages] requirements = [...]",
        id="top-level-packages-list",
    ),
]


@pytest.mark.parametrize(("text", "expected"), MALFORMED)
def test_malformed_recipe_message(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path / "bad.toml", text)

    with pytest.raises(RecipeError) as caught:
        load_recipe(path)

    expected = expected.replace("{path}", str(path)).replace("{dir}", str(tmp_path.resolve()))
    assert str(caught.value) == expected
    assert caught.value.exit_code == 2
    assert caught.value.path == path


def test_missing_file_suggests_a_neighbour(tmp_path: Path) -> None:
    write(tmp_path / "llm.toml", _TORCH)

    with pytest.raises(RecipeError) as caught:
        load_recipe(tmp_path / "lm.toml")

    missing, neighbour = tmp_path / "lm.toml", tmp_path / "llm.toml"
    assert str(caught.value) == f"{missing}: no such file (did you mean '{neighbour}'?)"
    assert caught.value.hint == "check the path, or create the recipe with 'gpuenv init'"
    assert caught.value.exit_code == 2


def test_errors_in_pyproject_name_the_full_table_path(tmp_path: Path) -> None:
    path = write(tmp_path / "pyproject.toml", '[tool.gpuenv.torch]\nversion = "2.4.x"\n')

    with pytest.raises(RecipeError) as caught:
        load_recipe(path)

    assert str(caught.value) == (
        f"{path}: tool.gpuenv.torch.version: '2.4.x' is not a PEP 440 version; write e.g. {_EXAMPLES}"
    )
    assert caught.value.key == "tool.gpuenv.torch.version"


def test_pyproject_missing_torch_names_the_pyproject_table(tmp_path: Path) -> None:
    path = write(tmp_path / "pyproject.toml", '[tool.gpuenv.env]\ndescription = "x"\n')

    with pytest.raises(RecipeError) as caught:
        load_recipe(path)

    assert str(caught.value) == (
        f"{path}: tool.gpuenv.torch: missing; every recipe needs a [tool.gpuenv.torch] table "
        'with at least version = "2.14.*"'
    )


def test_pyproject_without_the_table(tmp_path: Path) -> None:
    path = write(tmp_path / "pyproject.toml", '[project]\nname = "x"\n')

    with pytest.raises(RecipeError) as caught:
        load_recipe(path)

    assert str(caught.value) == (
        f"{path}: tool.gpuenv: missing; this pyproject.toml has no [tool.gpuenv] table"
    )
    assert caught.value.exit_code == 2


def test_pyproject_tool_gpuenv_that_is_not_a_table(tmp_path: Path) -> None:
    path = write(tmp_path / "pyproject.toml", '[tool]\ngpuenv = "envs/llm.toml"\n')

    with pytest.raises(RecipeError) as caught:
        load_recipe(path)

    assert str(caught.value) == f"{path}: tool.gpuenv: expected a table, got a string"


def test_pyproject_torch_extension_names_the_pyproject_keys(tmp_path: Path) -> None:
    path = write(
        tmp_path / "pyproject.toml",
        '[tool.gpuenv.torch]\nversion = "2.14.*"\n[[tool.gpuenv.extensions]]\nrequirement = "torch"\n',
    )

    with pytest.raises(RecipeError) as caught:
        load_recipe(path)

    assert str(caught.value) == (
        f"{path}: tool.gpuenv.extensions[0].requirement: torch is never built as an extension: "
        "it is installed from [tool.gpuenv.torch] (set tool.gpuenv.torch.version there)"
    )


def test_name_at_file_url_may_point_at_an_archive(tmp_path: Path) -> None:
    archive = tmp_path / "flash_attn-2.8.3.post2.tar.gz"
    archive.write_bytes(b"")

    ext = one_extension(tmp_path, f"flash-attn @ file://{archive}")

    assert (ext.name, ext.path) == ("flash-attn", archive)


def test_a_bare_path_must_be_a_directory(tmp_path: Path) -> None:
    (tmp_path / "ops.tar.gz").write_bytes(b"")

    with pytest.raises(RecipeError) as caught:
        one_extension(tmp_path, "./ops.tar.gz")

    assert caught.value.problem == (
        "'./ops.tar.gz' is not a directory; a path must be a source tree ('NAME @ file://…' takes archives)"
    )


def test_use_existing_needs_no_version_and_says_so(tmp_path: Path) -> None:
    recipe = load_recipe(write(tmp_path / "ngc.toml", '[torch]\nuse = "existing"\n'))
    assert recipe.torch.existing and recipe.torch.use == "existing" and recipe.torch.version == ""
    pinned = load_recipe(write(tmp_path / "pin.toml", '[torch]\nuse = "existing"\nversion = ">=2.5.0a0"\n'))
    assert pinned.torch.version == ">=2.5.0a0"
    assert load_recipe(write(tmp_path / "plain.toml", '[torch]\nversion = "2.13.0"\n')).torch.use == "install"
