"""What outlives a setup: the ABI-keyed wheel cache, its hits, the lock file, the wheelhouse, toolkits.

May import the ground, gpuenv.plan and gpuenv.probe, never setup or a front end."""
