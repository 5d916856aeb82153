"""The planner: recipe + hardware -> plan, pure: the records it takes and gives, and the decisions.

It starts no subprocess and opens no file but its own data (packagedata.py reads gpuenv/plan/data).
May import the ground (errors, runner, inputs, hints, progress) and this package only."""
