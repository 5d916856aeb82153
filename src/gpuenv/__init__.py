"""gpuenv: PyTorch GPU environments that actually work.

The library is the product; ``gpuenv.cli``, ``noxfile.py`` and ``tasks.py`` are
thin front ends over it.
"""

from __future__ import annotations

__version__ = "0.1.0"
