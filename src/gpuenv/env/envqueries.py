"""The questions gpuenv asks an env's interpreter, each declared once by name with its script.

Each script prints one JSON line after :data:`~gpuenv.runner.ANSWER_MARK`;
:class:`~gpuenv.env.targetenv.TargetEnv` runs them and reads the answers. The
names are what a stand-in for an env answers by (:func:`query_name`): the tests'
fake env gives facts per question, not per line of script text.
"""

from __future__ import annotations

from gpuenv.env.envanswers import DISTRIBUTION_READER
from gpuenv.runner import ANSWER_MARK

#: Query name → its script: every question an env's interpreter is asked (doctor's and export's too).
QUERIES: dict[str, str] = {}


def env_query(name: str, script: str) -> str:
    """Declare the query ``name`` asked by ``script``; returns the script."""
    if QUERIES.setdefault(name, script) != script:
        raise ValueError(f"two env queries named {name!r}")
    return script


def query_name(script: str) -> str | None:
    """The name ``script`` was declared under (the exact text), or None."""
    return next((name for name, text in QUERIES.items() if text == script), None)


_TORCH_FACTS = """
import importlib.metadata, importlib.util, json
def torch_facts():
    if importlib.util.find_spec("torch") is None:
        return None
    import torch
    try:
        archs = list(torch.cuda.get_arch_list())
    except Exception:
        archs = []
    try:
        distribution = importlib.metadata.version("torch")
    except Exception:  # not installed as a distribution, or its METADATA is unreadable
        distribution = ""
    try:
        installer = (importlib.metadata.distribution("torch").read_text("INSTALLER") or "").strip()
    except Exception:
        installer = ""
    return {
        "distribution": distribution,
        "installer": installer,
        "version": torch.__version__,
        "cuda": torch.version.cuda,
        "hip": getattr(torch.version, "hip", None),
        "cxx11_abi": bool(torch._C._GLIBCXX_USE_CXX11_ABI),
        "arch_list": archs,
        "path": list(getattr(torch, "__path__", []) or [""])[0],
    }
"""

_INSTALLED_FACTS = DISTRIBUTION_READER + """
def installed():
    found = {}
    for dist in importlib.metadata.distributions():
        name, version = name_and_version(dist)
        if name:
            found.setdefault(name, version)
    return found
"""

TORCH_SCRIPT = env_query("torch", _TORCH_FACTS + f"print({ANSWER_MARK!r} + json.dumps(torch_facts()))\n")

INSTALLED_SCRIPT = env_query("installed",
                             _INSTALLED_FACTS + f"print({ANSWER_MARK!r} + json.dumps(installed()))\n")

#: Printed before each import of the verify script, so a crash names its module.
IMPORTING_MARK = "@@gpuenv-importing@@"

# All of verify in one interpreter: torch's facts, each module imported in turn
# (a failure is reported, not raised), then the installed distributions.
VERIFY_SCRIPT = env_query("verify", _TORCH_FACTS + _INSTALLED_FACTS + f"""
import importlib, sys, traceback
facts = torch_facts()
failures = {{}}
for module in sys.argv[1:]:
    print({IMPORTING_MARK!r} + module, flush=True)
    try:
        importlib.import_module(module)
    except BaseException:
        failures[module] = traceback.format_exc(limit=-8)
print({ANSWER_MARK!r} + json.dumps({{"torch": facts, "failures": failures, "installed": installed()}}))
""")

# The marker environment is packaging.markers.default_environment(), computed
# without packaging, which the env may not hold.
_INTERPRETER_FACTS = """
import importlib.util, json, os, platform, sys, sysconfig
def full(info):
    text = "%d.%d.%d" % (info.major, info.minor, info.micro)
    return text if info.releaselevel == "final" else text + info.releaselevel[0] + str(info.serial)
def interpreter():
    impl = sys.implementation.name
    tag = {"cpython": "cp", "pypy": "pp"}.get(impl, impl[:2]) + "%d%d" % sys.version_info[:2]
    abi = tag + ("t" if sysconfig.get_config_var("Py_GIL_DISABLED") else "")
    return {
        "version": platform.python_version(),
        "python_tag": tag,
        "abi_tag": abi,
        "platform_tag": sysconfig.get_platform().replace("-", "_").replace(".", "_"),
        "purelib": sysconfig.get_paths()["purelib"],
        "prefix": sys.prefix,
        "in_venv": sys.prefix != getattr(sys, "base_prefix", sys.prefix),
        "externally_managed": os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED"),
        "has_pip": importlib.util.find_spec("pip") is not None,
        "markers": {
            "implementation_name": impl,
            "implementation_version": full(sys.implementation.version),
            "os_name": os.name,
            "platform_machine": platform.machine(),
            "platform_release": platform.release(),
            "platform_system": platform.system(),
            "platform_version": platform.version(),
            "python_full_version": platform.python_version(),
            "platform_python_implementation": platform.python_implementation(),
            "python_version": ".".join(platform.python_version_tuple()[:2]),
            "sys_platform": sys.platform,
        },
    }
"""

INTERPRETER_SCRIPT = env_query("interpreter",
                               _INTERPRETER_FACTS + f"print({ANSWER_MARK!r} + json.dumps(interpreter()))\n")

# torch's facts without importing it (an import costs seconds, and verify does it
# once, at the end): torch/version.py holds the version and the CUDA release, and
# a C++11-ABI build's libc10 names std::__cxx11 types in its symbols. Where the
# files do not say, "unknown": the caller imports torch instead.
_TORCH_FILE_FACTS = """
import importlib.util, os, runpy
def torch_files():
    spec = importlib.util.find_spec("torch")
    if spec is None:
        return None
    roots = list(spec.submodule_search_locations or [])
    libc10 = os.path.join(roots[0], "lib", "libc10.so") if roots else ""
    try:
        version = runpy.run_path(os.path.join(roots[0], "version.py"))
        with open(libc10, "rb") as handle:
            symbols = handle.read()
    except Exception:
        return "unknown"
    return {"version": str(version["__version__"]), "cuda": version.get("cuda"), "hip": version.get("hip"),
            "cxx11_abi": b"St7__cxx11" in symbols, "arch_list": [], "path": roots[0]}
"""

FACTS_SCRIPT = env_query("facts", _TORCH_FILE_FACTS + _INSTALLED_FACTS + _INTERPRETER_FACTS + (
    f"print({ANSWER_MARK!r} + json.dumps({{'torch': torch_files(), 'installed': installed(), "
    "'interpreter': interpreter()}))\n"))
