"""Fast unit tests of the planner: no GPU, no network, no torch."""
