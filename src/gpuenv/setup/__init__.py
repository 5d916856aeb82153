"""Making the env: the steps, the installers (pip, uv), sources, builds, adopting an env, rolling back.

May import every layer below it (plan, load, probe, env, lock, cache), never a front end."""
