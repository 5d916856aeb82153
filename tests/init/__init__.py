"""gpuenv init against real research repositories: the corpus under tests/data/repos."""
