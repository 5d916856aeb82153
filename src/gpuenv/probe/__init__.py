"""What this machine has: GPUs through NVML, CPUs and memory, CUDA toolkits, interpreters, binaries.

May import the ground and gpuenv.plan (the Hardware it fills in), never cache, setup or a front end."""
