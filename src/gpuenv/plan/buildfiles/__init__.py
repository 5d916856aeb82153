"""What a package's build files say, read without running them: pure (text in, facts out).

The knowledge checker compares these facts with the catalog; setup reads the tree it is about to
build with them. May import the ground and :mod:`gpuenv.plan` only.
"""
