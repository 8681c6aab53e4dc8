"""npusim: a cycle-approximate simulator of an Ascend-class NPU running tile-op decode programs.

From Python (a notebook, a script)::

    import npusim
    report = npusim.run("programs/qwen3_decode.yaml", preset="tiny")           # the typed report
    table = npusim.sweep("programs/qwen3_decode.yaml", {"SEQ_TILE": [64, 128, 256]},
                         configs=["ascend910b", "ascend950"])                   # a pandas DataFrame

The API is imported on first use, so `import npusim` stays light.
"""

from .version import __version__

__all__ = ["__version__", "run", "sweep"]


def __getattr__(name: str):
    if name in ("run", "sweep"):
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'npusim' has no attribute {name!r}")
