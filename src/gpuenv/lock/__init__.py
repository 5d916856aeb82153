"""gpuenv.lock: the project file that records what a setup installed, and the plan that rebuilds it.

May import the ground, gpuenv.plan, gpuenv.load, gpuenv.probe and gpuenv.env, never cache, setup or a
front end."""
