"""gpuenv init: read a research repository and write its recipe, noxfile, tasks.py and README section.

A command package: may import the layers below it (setup, cache, probe, plan, the ground); only the API
(gpuenv.api) and the text views of the front ends (gpuenv.render) import it."""
