"""npusim's version, in one place (reports, traces and `npusim --version` quote it)."""

__version__ = "0.1.0"
