"""The model's configuration as pypto-lib's HEAD programs write it: a frozen dataclass with a derived
@property, a variant picked by `replace`, an environment default and a pl.dynamic dim."""

import os
from dataclasses import dataclass, replace

import pypto.language as pl


@dataclass(frozen=True)
class Config:
    hidden: int
    tile: int
    rows: int = 8

    @property
    def blocks(self) -> int:
        return self.hidden // self.tile


BASE = Config(hidden=128, tile=64)
PRESETS = {name: replace(BASE, rows=rows) for name, rows in (("small", 8), ("large", 32))}
CFG = replace(PRESETS[os.environ.get("MODEL_PRESET", "large")], rows=int(os.environ.get("MODEL_ROWS", "16")))
ROWS_DYN = pl.dynamic("ROWS_DYN")

assert CFG.hidden % CFG.tile == 0
