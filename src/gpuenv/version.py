"""gpuenv's version: one place, read by the package's face (``gpuenv.__version__``) and by what records it."""

__version__ = "0.1.0"
