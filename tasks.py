"""invoke tasks: `invoke setup --cuda 12.1` sets up the GPU environment; also plan, probe, doctor, cache.

Every task is made from gpuenv's own parser (gpuenv.integrations.invoke_collection), so each has
every option its `gpuenv` command has: `invoke --help setup` lists them.
"""

from __future__ import annotations

import sys
from pathlib import Path

try:
    from gpuenv.integrations import invoke_collection
except ImportError:  # a checkout where gpuenv is not installed next to invoke
    sys.path.insert(0, str(Path(__file__).parent / "src"))
    from gpuenv.integrations import invoke_collection

namespace = invoke_collection()
