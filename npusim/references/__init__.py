"""Reference implementations that check a program's outputs: plain numpy over whole tensors, written
independently of the interpreter and the tile program, following each program's reference numerics.

A program names its reference with `reference: NAME`; the run compares the named outputs with
torch.allclose semantics: |actual - expected| <= atol + rtol * |expected|. The report gives the largest
absolute error, and the largest relative error among elements whose expected magnitude is at least atol.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel

from npusim.defaults import REFERENCE_ATOL, REFERENCE_RTOL
from npusim.errors import Location, ProgramError, shown

from . import examples, qwen3_decode

Inputs = dict[str, np.ndarray]


@dataclass(frozen=True)
class Reference:
    """A reference and what it reads of a program: its input tensors, the params and lets it uses, and the
    outputs it computes (a program naming it must have them all)."""

    name: str
    compute: Callable[[Inputs, dict[str, Any]], dict[str, np.ndarray]]  # -> expected values (float64/32)
    inputs: tuple[str, ...] = ()
    consts: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    rtol: float = REFERENCE_RTOL
    atol: float = REFERENCE_ATOL


REFERENCES: dict[str, Reference] = {
    "matmul": Reference("matmul", examples.matmul, ("a", "b"), (), ("c32", "c")),
    "rms_norm": Reference("rms_norm", examples.rms_norm, ("x", "gamma"), ("eps",), ("y",)),
    "softmax": Reference("softmax", examples.softmax, ("q", "k", "v"), ("ctx_len", "scale", "SEQ_TILE"), ("out",)),
    "qwen3_decode": Reference(
        "qwen3_decode", qwen3_decode.reference,
        ("hidden_states", "input_rms_weight", "wq", "wk", "wv", "seq_lens", "rope_cos", "rope_sin", "k_cache",
         "v_cache", "wo", "post_rms_weight", "w_gate", "w_up", "w_down"),
        ("batch", "hidden", "head_dim", "num_heads", "num_kv_heads", "max_seq", "eps", "attn_scale", "SEQ_TILE"),
        ("out", "k_cache", "v_cache"),
    ),
}


class OutputCheck(BaseModel):
    """How one output compares with the reference."""

    passed: bool
    max_abs_err: float | None  # None: non-finite (NaN or inf in the outputs)
    max_rel_err: float | None
    mismatches: int
    elements: int


class CheckResult(BaseModel):
    """The report's `check` block: every checked output, and the worst errors over all of them."""

    reference: str
    passed: bool
    max_abs_err: float | None
    max_rel_err: float | None
    rtol: float
    atol: float
    outputs: dict[str, OutputCheck]


def get_reference(name: str, where: Location | None = None) -> Reference:
    if name not in REFERENCES:
        raise ProgramError(f"unknown reference {name!r}; known: {', '.join(REFERENCES)}", where)
    return REFERENCES[name]


def check_fits(ref: Reference, roles: dict[str, str], consts: dict[str, Any], where: Location | None) -> None:
    """A program naming `ref` must have the tensors (inputs with values, outputs) and constants it reads."""
    missing = [f"input tensor {n}" for n in ref.inputs if roles.get(n) not in ("input", "inout")]
    missing += [f"output tensor {n}" for n in ref.outputs if roles.get(n) not in ("output", "inout")]
    missing += [f"param or let {n}" for n in ref.consts if n not in consts]
    if missing:
        raise ProgramError(f"reference {ref.name} does not fit this program: it needs {', '.join(missing[:4])}"
                           + (", ..." if len(missing) > 4 else ""), where)


def compute_expected(ref: Reference, inputs: Inputs, consts: dict[str, Any],
                     where: Location | None = None) -> dict[str, np.ndarray]:
    """The reference's values on this program's inputs; one that cannot be computed on its tensors (shapes it
    does not expect) is a located error at the program's `reference:`."""
    try:
        return ref.compute(inputs, consts)
    except (KeyError, IndexError, ValueError, TypeError, ZeroDivisionError) as exc:
        raise ProgramError(f"reference {ref.name} does not fit this program's tensors: {type(exc).__name__}: "
                           f"{shown(str(exc), 120)}", where) from None


def check(ref: Reference, inputs: Inputs, consts: dict[str, Any], actual: dict[str, np.ndarray],
          block: int = 1 << 22, where: Location | None = None,
          expected: dict[str, np.ndarray] | None = None) -> CheckResult:
    """Compare `actual` final values with the reference, `block` elements at a time (caches are large).
    `expected`: the reference's values if already computed (a run computes them beside the interpreter)."""
    if expected is None:
        expected = compute_expected(ref, inputs, consts, where)
    per_output: dict[str, OutputCheck] = {}
    for name, want_all in expected.items():
        if np.shape(want_all) != np.shape(actual[name]):
            raise ProgramError(f"reference {ref.name} computes {name} of shape {list(np.shape(want_all))}, the "
                               f"program's is {list(np.shape(actual[name]))}", where)
        got_flat = np.asarray(actual[name]).reshape(-1)
        want_flat = np.asarray(want_all).reshape(-1)
        max_abs = max_rel = 0.0
        mismatches = 0
        same_dtype = got_flat.dtype == want_flat.dtype
        for s in range(0, got_flat.size, block):
            got, want = got_flat[s : s + block], want_flat[s : s + block]
            if same_dtype:
                differ = got.view(f"u{got.itemsize}") != want.view(f"u{got.itemsize}")
                if not differ.any():
                    continue  # identical bits (most of a KV cache): no error to measure
                # an element with identical finite bits has error 0 (and relative error 0 where atol > 0): only
                # the others can change the counts and maxima (identical non-finite ones still count, as they
                # do over the whole block). With atol = 0 a 0/0 takes the block's relative maximum: measure it whole.
                if ref.atol > 0:
                    if not np.issubdtype(got.dtype, np.integer):
                        differ |= ~np.isfinite(got)
                    got, want = got[differ], want[differ]
            got = got.astype(np.float64)
            want = want.astype(np.float64)
            err = np.abs(got - want)
            bad = ~(err <= ref.atol + ref.rtol * np.abs(want))  # NaN compares False: counted as bad
            mismatches += int(np.count_nonzero(bad))
            max_abs = max(max_abs, float(np.max(err, initial=0.0)))
            sized = np.abs(want) >= ref.atol  # relative error means something where values are not ~0
            max_rel = max(max_rel, float(np.max(err[sized] / np.abs(want[sized]), initial=0.0)))
            if np.isnan(err).any():
                max_abs = max_rel = float("inf")
        per_output[name] = OutputCheck(passed=mismatches == 0, max_abs_err=_finite(max_abs),
                                       max_rel_err=_finite(max_rel), mismatches=mismatches,
                                       elements=int(got_flat.size))
    outs = per_output.values()
    return CheckResult(reference=ref.name, passed=all(o.passed for o in outs),
                       max_abs_err=_worst(o.max_abs_err for o in outs), max_rel_err=_worst(o.max_rel_err for o in outs),
                       rtol=ref.rtol, atol=ref.atol, outputs=per_output)


def _worst(values: Any) -> float | None:
    values = list(values)
    return None if any(v is None for v in values) else max(values, default=0.0)


def _finite(x: float) -> float | None:
    """JSON has no infinity: a non-finite error (NaN or inf in the outputs) is reported as null."""
    return x if np.isfinite(x) else None
