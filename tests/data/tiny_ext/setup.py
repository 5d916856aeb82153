"""A tiny C extension for the cache tests: builds in a second, imports anywhere.

GPUENV_TEST_BUILD_SECONDS (a build knob the recipe sets) makes the build
sleep first, so tests can start two setups on one key, or kill one midway.
No pyproject.toml: it goes through setuptools' legacy backend, like many
real extensions.
"""

import os
import sys
import time

from setuptools import Extension, setup

delay = float(os.environ.get("GPUENV_TEST_BUILD_SECONDS", "0") or 0)
if "bdist_wheel" in sys.argv:
    # The tests count these lines to tell a real build from a cached wheel.
    print(f"gpuenv-tiny-ext: building (sleeping {delay} s first)", flush=True)
    time.sleep(delay)

setup(
    name="gpuenv-tiny-ext",
    version="1.0",
    ext_modules=[Extension("gpuenv_tiny_ext", ["tiny.c"])],
)
