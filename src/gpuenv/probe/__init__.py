"""What this machine has: GPUs through NVML, CPUs and memory, CUDA toolkits, interpreters, binaries.

May import the ground, gpuenv.plan (the Hardware it fills in) and gpuenv.load, never env, lock, cache,
setup or a front end."""
