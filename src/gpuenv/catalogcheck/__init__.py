"""The knowledge checker: re-derives the extension catalog's facts from the packages' own build files.

:mod:`gpuenv.plan.buildfiles` reads a package's setup.py (and the build helpers it imports) with
``ast``, never running it; ``sdists`` gets those files from the index or a local tree; ``compare`` sets them
against the catalog; ``report`` prints the table. ``python -m gpuenv.catalogcheck``, or
``nox -s check-knowledge``.

A command package: may import the ground, gpuenv.plan, gpuenv.probe, gpuenv.cache and gpuenv.setup;
nothing imports it."""
