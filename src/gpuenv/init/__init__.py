"""gpuenv init: read a research repository and write its recipe, noxfile, tasks.py and README section.

A front end: may import any layer; nothing but the front ends imports it."""
