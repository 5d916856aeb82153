"""gpuenv doctor: will this environment run on these GPUs? The diagnosis and its checks by subject.

A front end: may import any layer; nothing but the front ends imports it."""
