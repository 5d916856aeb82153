"""gpuenv export: the plan or the lock as another tool's file (uv's pyproject tables, PEP 751 pylock).

A front end: may import any layer; nothing but the front ends imports it."""
