"""The planner and what it reads: recipe + hardware -> plan, pure (no subprocess, no setup).

May import the ground (errors, runner, inputs, hints, progress) and this package only."""
