"""References of the example programs (matmul, rms_norm, softmax): whole-tensor numpy in float64, with
the programs' BF16 rounding points (numpy/ml_dtypes round to nearest even, as torch does). Matmuls and exp
go through `same_bits`, so the expected values are the same on every machine and thread count."""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np

from . import same_bits

Inputs = dict[str, np.ndarray]


def _f64(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def to_bf16(x: np.ndarray) -> np.ndarray:
    """Round to BF16 (nearest even) and back to float64."""
    return np.asarray(x, dtype=np.float32).astype(ml_dtypes.bfloat16).astype(np.float64)


def matmul(inputs: Inputs, consts: dict[str, Any]) -> dict[str, np.ndarray]:
    c = same_bits.matmul(inputs["a"], inputs["b"])
    return {"c32": c, "c": to_bf16(c)}


def rms_norm(inputs: Inputs, consts: dict[str, Any]) -> dict[str, np.ndarray]:
    x = _f64(inputs["x"])
    inv = 1.0 / np.sqrt(np.mean(x * x, axis=1, keepdims=True) + consts["eps"])
    return {"y": to_bf16(x * inv * _f64(inputs["gamma"]))}


def online_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, scale: float, tile: int) -> np.ndarray:
    """softmax(q k^T * scale) v over the rows of k and v, in blocks of `tile` positions: per block the exp
    scores are rounded to BF16 (and summed as such), then blocks combine with the online-softmax rescaling
    (its factors exp rounded to FP32)."""
    o = m = l_sum = None
    for s0 in range(0, k.shape[0], tile):
        scores = same_bits.matmul(q, k[s0 : s0 + tile].T) * scale
        mb = scores.max(axis=1, keepdims=True)
        p = to_bf16(same_bits.exp_f32(scores - mb))
        lb = p.sum(axis=1, keepdims=True)
        ob = same_bits.matmul(p, v[s0 : s0 + tile])
        if o is None:
            o, m, l_sum = ob, mb, lb
            continue
        m_new = np.maximum(m, mb)
        alpha, beta = same_bits.exp_f32(m - m_new), same_bits.exp_f32(mb - m_new)
        o, l_sum, m = o * alpha + ob * beta, l_sum * alpha + lb * beta, m_new
    return o / l_sum


def softmax(inputs: Inputs, consts: dict[str, Any]) -> dict[str, np.ndarray]:
    ctx = consts["ctx_len"]
    k, v = _f64(inputs["k"])[:ctx], _f64(inputs["v"])[:ctx]
    return {"out": to_bf16(online_attention(_f64(inputs["q"]), k, v, consts["scale"], consts["SEQ_TILE"]))}
