"""Reference of the Qwen3-32B decode layer (docs/sources.md SPEC, "Reference numerics"): plain numpy over
whole tensors, independent of the tile program. FP32 arithmetic with the program's BF16 rounding points
(rounded to nearest even, as torch does: the device's ties-away cast differs only on exact ties); matmuls
are the seed's torch golden `A.float() @ B.float()`, here exact products summed in float64 and rounded once
to FP32, and exp is rounded once to FP32 (`same_bits`: the same bits on every machine and thread count).
Weights are widened a block at a time so the check fits beside the simulator in memory.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import same_bits
from .examples import online_attention, to_bf16


def _matmul(a: np.ndarray, w: np.ndarray) -> np.ndarray:
    """a (FP32 values) @ w (BF16), rounded to FP32."""
    return same_bits.matmul(a, w).astype(np.float32)


def _rms_norm(x: np.ndarray, gamma: np.ndarray, eps: float) -> np.ndarray:
    variance = np.mean(x * x, axis=1, keepdims=True, dtype=np.float32) + np.float32(eps)
    return x / np.sqrt(variance) * gamma


def _rope(x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """Rotate-half RoPE of rows x [n, head_dim] at one position."""
    half = x.shape[1] // 2
    lo, hi = x[:, :half], x[:, half:]
    return np.concatenate([lo * cos[:half] - hi * sin[:half], hi * cos[half:] + lo * sin[half:]], axis=1)


def _bf16_32(x: np.ndarray) -> np.ndarray:
    return to_bf16(x).astype(np.float32)


def reference(inputs: dict[str, np.ndarray], c: dict[str, Any]) -> dict[str, np.ndarray]:
    batch, hidden, head_dim = c["batch"], c["hidden"], c["head_dim"]
    n_heads, n_kv, max_seq = c["num_heads"], c["num_kv_heads"], c["max_seq"]
    q_per_kv = n_heads // n_kv
    x = inputs["hidden_states"].astype(np.float32)

    # Scope 1: RMSNorm (FP32 -> BF16) and the Q/K/V projections (FP32).
    normed = _bf16_32(_rms_norm(x, inputs["input_rms_weight"], c["eps"]))
    q = _matmul(normed, inputs["wq"])
    k = _matmul(normed, inputs["wk"])
    v = _matmul(normed, inputs["wv"])

    # Scope 2: RoPE, BF16 cache writes, block-wise attention with BF16 exp scores.
    k_cache, v_cache = inputs["k_cache"].copy(), inputs["v_cache"].copy()
    attn = np.empty((batch, hidden), dtype=np.float32)
    for b in range(batch):
        ctx = int(inputs["seq_lens"][b])
        pos = ctx - 1
        cos, sin = inputs["rope_cos"][pos], inputs["rope_sin"][pos]
        rows = b * n_kv * max_seq + np.arange(n_kv) * max_seq + pos
        k_cache[rows] = _rope(k[b].reshape(n_kv, head_dim), cos, sin).astype(k_cache.dtype)
        v_cache[rows] = v[b].reshape(n_kv, head_dim).astype(v_cache.dtype)
        q_rot = _bf16_32(_rope(q[b].reshape(n_heads, head_dim), cos, sin)).astype(np.float64)
        for h in range(n_kv):
            base = b * n_kv * max_seq + h * max_seq
            keys = k_cache[base : base + ctx].astype(np.float64)
            values = v_cache[base : base + ctx].astype(np.float64)
            heads = q_rot[h * q_per_kv : (h + 1) * q_per_kv]
            o = online_attention(heads, keys, values, c["attn_scale"], c["SEQ_TILE"])
            attn[b, h * q_per_kv * head_dim : (h + 1) * q_per_kv * head_dim] = _bf16_32(o).reshape(-1)

    # Scope 3: output projection, residual, RMSNorm, SwiGLU MLP, residual.
    resid1 = _matmul(attn, inputs["wo"]) + x
    post = _bf16_32(_rms_norm(resid1, inputs["post_rms_weight"], c["eps"]))
    gate = _matmul(post, inputs["w_gate"])
    up = _matmul(post, inputs["w_up"])
    mlp = _bf16_32(gate / (np.float32(1) + same_bits.exp_f32(-gate)) * up)
    out = to_bf16(_matmul(mlp, inputs["w_down"]) + resid1)
    return {"out": out, "k_cache": k_cache, "v_cache": v_cache}
