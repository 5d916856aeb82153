"""invoke tasks: `invoke setup --cuda 12.1` sets up the GPU environment; also plan, probe, doctor, cache.

Every task runs gpuenv in invoke's own process (gpuenv.integrations.invoke_collection), with every option
its `gpuenv` command has: `invoke --help setup` lists them. From a checkout where gpuenv is not installed
it runs from src/; gpuenv's dependencies must be there (`pip install -e .` installs both).
"""

from __future__ import annotations

import sys
from pathlib import Path

try:
    from gpuenv.integrations import invoke_collection
except ImportError:  # a checkout where gpuenv is not installed next to invoke: run it from src/
    sys.path.insert(0, str(Path(__file__).parent / "src"))
    from gpuenv.integrations import invoke_collection

namespace = invoke_collection()
