"""gpuenv export: the plan or the lock as another tool's file (uv's pyproject tables, PEP 751 pylock).

A command package: may import the layers below it (setup, cache, probe, plan, the ground); only the API
(gpuenv.api) and the text views of the front ends (gpuenv.render) import it."""
