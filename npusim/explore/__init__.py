"""Exploring a program's design space: sweeps over params and configs (`npusim sweep`) and tiling search
(`npusim tune`), on a local process pool or a Ray cluster, above the single run they repeat."""
