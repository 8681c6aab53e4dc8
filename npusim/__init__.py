"""npusim: a cycle-approximate simulator of an Ascend-class NPU running tile-op decode programs.

From Python (a notebook, a script)::

    import npusim
    report = npusim.run("programs/qwen3_decode.yaml", preset="tiny")           # the typed report
    table = npusim.sweep("programs/qwen3_decode.yaml", {"SEQ_TILE": [64, 128, 256]},
                         configs=["ascend910b", "ascend950"])                   # a pandas DataFrame

The API is imported on first use, so `import npusim` stays light.

BLAS runs on one thread unless the environment says otherwise (set before numpy is first imported): npusim
uses the cores itself (input chunks on every core, the reference check beside the interpreter), its exact
matmuls are small, and OpenBLAS's own threads spin on a busy 2-core machine (and cost ~50 ms to start).
The bits do not depend on it: npusim's matmuls sum exactly.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from .version import __version__

__all__ = ["__version__", "run", "sweep"]


def __getattr__(name: str):
    if name in ("run", "sweep"):
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'npusim' has no attribute {name!r}")
