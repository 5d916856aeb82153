"""Readers of a Python environment: its interpreter, its distributions, its torch, pip's configuration.

May import the ground, gpuenv.plan and gpuenv.probe, never lock, cache, setup or a front end."""
