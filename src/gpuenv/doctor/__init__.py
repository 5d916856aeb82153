"""gpuenv doctor: will this environment run on these GPUs? The diagnosis and its checks by subject.

A command package: may import the layers below it (setup, cache, probe, plan, the ground); only the API
(gpuenv.api) and the text views of the front ends (gpuenv.render) import it."""
