"""Reference implementations that check a program's outputs: plain numpy over whole tensors, written
independently of the interpreter and the tile program, following each program's reference numerics.

A program names its reference with `reference: NAME`; the run compares the named outputs with
torch.allclose semantics: |actual - expected| <= atol + rtol * |expected|.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ProgramError
from . import examples

Inputs = dict[str, np.ndarray]


@dataclass(frozen=True)
class Reference:
    name: str
    compute: Callable[[Inputs, dict[str, Any]], dict[str, np.ndarray]]  # -> expected values (float64/32)
    rtol: float = 3e-3
    atol: float = 3e-3


REFERENCES: dict[str, Reference] = {
    "matmul": Reference("matmul", examples.matmul),
    "rms_norm": Reference("rms_norm", examples.rms_norm),
    "softmax": Reference("softmax", examples.softmax),
}


def get_reference(name: str) -> Reference:
    if name not in REFERENCES:
        raise ProgramError(f"unknown reference {name!r}; known: {', '.join(REFERENCES)}")
    return REFERENCES[name]


def check(ref: Reference, inputs: Inputs, consts: dict[str, Any], actual: dict[str, np.ndarray]) -> dict[str, Any]:
    """Compare `actual` final values with the reference; the report's `check` block."""
    expected = ref.compute(inputs, consts)
    per_output: dict[str, Any] = {}
    worst_abs = worst_rel = 0.0
    passed = True
    for name, want in expected.items():
        got = np.asarray(actual[name], dtype=np.float64)
        want = np.asarray(want, dtype=np.float64)
        err = np.abs(got - want)
        finite = np.isfinite(got) & np.isfinite(want)
        ok = bool(np.all(finite) and np.all(err <= ref.atol + ref.rtol * np.abs(want)))
        max_abs = float(np.max(err)) if err.size and np.all(finite) else float("inf")
        rel = err / np.maximum(np.abs(want), np.finfo(np.float64).tiny)
        max_rel = float(np.max(rel)) if err.size and np.all(finite) else float("inf")
        mismatches = int(np.sum(~(err <= ref.atol + ref.rtol * np.abs(want))))
        per_output[name] = {"passed": ok, "max_abs_err": _finite(max_abs), "max_rel_err": _finite(max_rel),
                            "mismatches": mismatches, "elements": int(got.size)}
        passed &= ok
        worst_abs, worst_rel = max(worst_abs, max_abs), max(worst_rel, max_rel)
    return {"reference": ref.name, "passed": passed, "max_abs_err": _finite(worst_abs),
            "max_rel_err": _finite(worst_rel), "rtol": ref.rtol, "atol": ref.atol, "outputs": per_output}


def _finite(x: float) -> float | None:
    """JSON has no infinity: a non-finite error (NaN or inf in the outputs) is reported as null."""
    return x if np.isfinite(x) else None
