"""Making the env: the steps, the installers (pip, uv), sources, builds and the target env.

May import the ground, gpuenv.plan, gpuenv.probe and gpuenv.cache, never a front end."""
