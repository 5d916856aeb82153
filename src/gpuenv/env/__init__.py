"""Readers of a Python environment: its interpreter, distributions, torch, pip's configuration, and the
ABI it gives the extensions built in it.

May import the ground, gpuenv.plan, gpuenv.load and gpuenv.probe, never lock, cache, setup or a front end."""
