"""What outlives a setup: the ABI-keyed wheel cache, its hits, the wheelhouse, the toolkit cache, over
one store.

May import the ground, gpuenv.plan, gpuenv.load, gpuenv.probe, gpuenv.env and gpuenv.lock, never setup or
a front end."""
