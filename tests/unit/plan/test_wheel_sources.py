"""What the plan says setup will ask before building: shared caches, prebuilt wheels, stable-ABI keying;
the recipe's [cache] table and an extension's prebuilt key; --cache-from and GPUENV_CACHE_FROM."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gpuenv.errors import RecipeError
from gpuenv.load.recipe import load_recipe
from tests.fakes import clean_env
from tests.unit.plan.test_cli_plan import node

FLASH = '[[extensions]]\nrequirement = "flash-attn==2.8.3.post2"\n'
TORCH = '[torch]\nversion = "2.13.*"\n'


def plan_json(tmp_path: Path, recipe: str, *args: str, env: dict[str, str] | None = None) -> Any:
    (tmp_path / "recipe.toml").write_text(recipe)
    (tmp_path / "node.json").write_text(json.dumps(node("9.0")))
    environ = clean_env(keep_offline=False, GPUENV_OFFLINE="1", **(env or {}))
    done = subprocess.run([sys.executable, "-m", "gpuenv", "plan", "--json",
                           "-r", str(tmp_path / "recipe.toml"), "--hardware", str(tmp_path / "node.json"),
                           "--no-cache", *args],
                          cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_plan_lists_in_order_what_setup_asks_before_building(tmp_path: Path) -> None:
    data = plan_json(tmp_path, TORCH + FLASH, "--cache-from", "https://me:s3cret@cache.lab/simple/", "--push")
    assert data["cache_from"] == ["https://me:***@cache.lab/simple/"] and data["push"] is True
    (flash,) = data["extensions"]
    said = flash["wheel_sources"]
    assert said[0] == "the local wheel cache, by its ABI key"
    assert said[1] == "the shared caches https://me:***@cache.lab/simple/, by the same key"
    assert said[2].startswith("prebuilt wheels from https://github.com/Dao-AILab/flash-attention/releases/")
    assert "device code for 9.0" in said[2]
    assert said[3] == "then it builds and pushes the wheel to the shared caches"
    assert "s3cret" not in json.dumps(data)
    assert flash["prebuilt"][0]["local"] == "cu{cuda_major}torch{torch_release}cxx11abi{cxx11_abi}"


def test_the_environment_and_the_recipe_name_the_caches_the_command_line_wins(tmp_path: Path) -> None:
    recipe = TORCH + '[cache]\nfrom = ["shared-wheels"]\npush = true\nprebuilt = false\n' + FLASH
    data = plan_json(tmp_path, recipe)
    assert data["cache_from"] == [str(tmp_path / "shared-wheels")], "a folder is relative to the recipe"
    assert data["push"] is True and data["prebuilt"] is False
    assert "no prebuilt wheels (turned off)" in data["extensions"][0]["wheel_sources"]
    from_env = plan_json(tmp_path, recipe, env={"GPUENV_CACHE_FROM": "http://a.lab/simple/ http://b.lab/simple/"})
    assert from_env["cache_from"] == ["http://a.lab/simple/", "http://b.lab/simple/"]
    given = plan_json(tmp_path, recipe, "--cache-from", "http://c.lab/simple/",
                      env={"GPUENV_CACHE_FROM": "http://a.lab/simple/"})
    assert given["cache_from"] == ["http://c.lab/simple/"]


def test_a_recipe_replaces_or_removes_an_extensions_prebuilt_sources(tmp_path: Path) -> None:
    source = '{ url = "https://lab.example/whl/{variant}/", local = "cu{cuda_major}" }'
    own = TORCH + FLASH + f"prebuilt = [{source}]\n"
    (flash,) = plan_json(tmp_path, own)["extensions"]
    assert flash["prebuilt"] == [{"url": "https://lab.example/whl/{variant}/", "local": "cu{cuda_major}"}]
    (flash,) = plan_json(tmp_path, TORCH + FLASH + "prebuilt = []\n")["extensions"]
    assert flash["prebuilt"] == [] and not any("prebuilt" in s for s in flash["wheel_sources"])


def test_a_local_tree_or_a_url_never_gets_a_publishers_wheel(tmp_path: Path) -> None:
    url = TORCH + '[[extensions]]\nrequirement = "flash-attn @ https://example.org/flash_attn-2.8.3.tar.gz"\n'
    (flash,) = plan_json(tmp_path, url)["extensions"]
    assert flash["prebuilt"] == []


def test_a_stable_abi_extension_is_said_to_be_keyed_by_its_floor(tmp_path: Path) -> None:
    recipe = '[torch]\nversion = "2.14.*"\n[[extensions]]\nrequirement = "xformers==0.0.35"\n'
    (xformers,) = plan_json(tmp_path, recipe)["extensions"]
    assert xformers["stable_abi"] == "2.10"
    assert any("keyed by torch's stable ABI 2.10" in s for s in xformers["wheel_sources"])


@pytest.mark.parametrize(("table", "problem"), [
    ('[cache]\nfrom = "http://a/simple/"\n', "expected an array of strings"),
    ('[cache]\nfrom = ["ftp://a/simple/"]\n', "gpuenv reads http, https and file URLs"),
    ('[cache]\nfrom = ["http:///simple/"]\n', "a URL without a host"),
    ('[cache]\npush = "yes"\n', "expected a boolean"),
    ('[cache]\nform = []\n', "unknown key"),
])
def test_a_bad_cache_table_names_its_key(tmp_path: Path, table: str, problem: str) -> None:
    (tmp_path / "recipe.toml").write_text(TORCH + table)
    with pytest.raises(RecipeError, match=problem):
        load_recipe(tmp_path / "recipe.toml")


def test_a_bad_cache_from_is_an_input_error(tmp_path: Path) -> None:
    (tmp_path / "recipe.toml").write_text(TORCH)
    done = subprocess.run([sys.executable, "-m", "gpuenv", "plan", "-r", str(tmp_path / "recipe.toml"),
                           "--gpu", "H100", "--cache-from", "ftp://x/"], capture_output=True, text=True,
                          env={**os.environ, "GPUENV_OFFLINE": "1"}, timeout=60)
    assert done.returncode == 2
    assert done.stderr.startswith("error: cache source 'ftp://x/': gpuenv reads http, https and file URLs")
