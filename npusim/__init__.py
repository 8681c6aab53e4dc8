"""npusim: a cycle-approximate simulator of an Ascend-class NPU running tile-op decode programs.

BLAS runs on one thread unless the environment says otherwise (set before numpy is first imported): npusim
uses the cores itself (input chunks on every core, the reference check beside the interpreter), its exact
matmuls are small, and OpenBLAS's own threads spin on a busy 2-core machine (and cost ~50 ms to start).
The bits do not depend on it: npusim's matmuls sum exactly."""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"
