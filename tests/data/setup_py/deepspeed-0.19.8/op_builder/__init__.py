# deepspeed 0.19.8: an excerpt of its build logic, a fixture of the knowledge checker (tests/catalogcheck).
# Copied from its PyPI sdist deepspeed-0.19.8.tar.gz (sha256 9e491abd0827ea5c389dd702e15e11e13d83d904bac4a20d6c2a4cb37207a9af), op_builder/__init__.py.
# Apache-2.0, Copyright (c) Microsoft Corporation. Left out: the op builder discovery after line 13; the lines kept are as published.
# Copyright (c) Microsoft Corporation.
# SPDX-License-Identifier: Apache-2.0

# DeepSpeed Team

import sys
import os
import pkgutil
import importlib

from .builder import get_default_compute_capabilities, OpBuilder

# Do not remove, required for abstract accelerator to detect if we have a deepspeed or 3p op_builder
