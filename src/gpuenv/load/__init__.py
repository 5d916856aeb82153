"""What gpuenv reads before planning: the recipe file and its requirements files, local trees.

The trees' metadata, build files, git index and sources are read here so the planner stays pure.
May import the ground and gpuenv.plan, never probe, env, lock, cache, setup or a front end."""
