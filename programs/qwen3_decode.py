"""One Qwen3-32B decode layer written in PyPTO's seed-era dialect (`@pl.program`, `pl.incore`,
`pl.auto_incore`), npusim's own rendering of the "3-scope" program of pypto-lib PR #99 (docs/sources.md
SPEC). `npusim run programs/qwen3_decode.py` imports it without running it; it imports to exactly the
instructions of programs/qwen3_decode.yaml (tests/pypto/test_qwen3_rendering.py checks that, bit for bit and
cycle for cycle). One op per line, so that every YAML instruction has its line here.

Scope 1: input RMSNorm, then the Q/K/V projections (each output block a matmul chain over the hidden dim).
Scope 2: RoPE on K and Q with the KV-cache update (one kernel per 8 KV heads), then attention per query
group: zeroed scratch, QK, masked softmax and SV in kernels of up to SB_BATCH blocks, and an online-softmax
kernel. Scope 3: output projection, residual, post-attention RMSNorm, SwiGLU MLP, down projection, residual.

This file is never executed by npusim; running it needs PyPTO (`import pypto.language as pl`) and torch.
"""

import pypto.language as pl

# Tiling (the seed's values).
K_CHUNK = 128
Q_OUT_CHUNK = 64
KV_OUT_CHUNK = 64
BATCH_TILE = 16
Q_HEAD_BATCH = 8
Q_HEAD_PAD = 16
SEQ_TILE = 64
SB_BATCH = 64
MLP_OUT_CHUNK = 256


def build_decode_layer(
    batch: int = 16,
    max_seq: int = 4096,
    num_heads: int = 64,
    num_kv_heads: int = 8,
    head_dim: int = 128,
    intermediate: int = 25600,
    eps: float = 1e-6,
):
    hidden = num_heads * head_dim
    kv_hidden = num_kv_heads * head_dim
    half_dim = head_dim // 2
    hidden_blocks = hidden // K_CHUNK
    q_out_blocks = hidden // Q_OUT_CHUNK
    kv_out_blocks = kv_hidden // KV_OUT_CHUNK
    mlp_out_blocks = intermediate // MLP_OUT_CHUNK
    q_per_kv = num_heads // num_kv_heads
    q_groups = q_per_kv // Q_HEAD_BATCH
    total_q_groups = num_kv_heads * q_groups
    max_ctx_blocks = (max_seq + SEQ_TILE - 1) // SEQ_TILE
    attn_scale = 1.0 / head_dim ** 0.5
    inv_hidden = 1.0 / hidden
    cache_rows = batch * num_kv_heads * max_seq
    assert batch % BATCH_TILE == 0
    assert hidden % K_CHUNK == 0 and hidden % Q_OUT_CHUNK == 0
    assert kv_hidden % KV_OUT_CHUNK == 0 and intermediate % MLP_OUT_CHUNK == 0
    assert num_heads % num_kv_heads == 0 and head_dim % 2 == 0
    assert q_per_kv == Q_HEAD_BATCH  # the RoPE writes query rows ki * Q_HEAD_PAD + qi: one group per KV head
    assert Q_HEAD_BATCH <= Q_HEAD_PAD

    @pl.program
    class DecodeLayer:
        @pl.function(type=pl.FunctionType.Opaque)
        def qwen3_decode(
            self,
            hidden_states: pl.Tensor[[batch, hidden], pl.BF16],
            input_rms_weight: pl.Tensor[[1, hidden], pl.FP32],
            wq: pl.Tensor[[hidden, hidden], pl.BF16],
            wk: pl.Tensor[[hidden, kv_hidden], pl.BF16],
            wv: pl.Tensor[[hidden, kv_hidden], pl.BF16],
            seq_lens: pl.Tensor[[batch], pl.INT32],
            rope_cos: pl.Tensor[[max_seq, head_dim], pl.FP32],
            rope_sin: pl.Tensor[[max_seq, head_dim], pl.FP32],
            k_cache: pl.Tensor[[cache_rows, head_dim], pl.BF16],
            v_cache: pl.Tensor[[cache_rows, head_dim], pl.BF16],
            wo: pl.Tensor[[hidden, hidden], pl.BF16],
            post_rms_weight: pl.Tensor[[1, hidden], pl.FP32],
            w_gate: pl.Tensor[[hidden, intermediate], pl.BF16],
            w_up: pl.Tensor[[hidden, intermediate], pl.BF16],
            w_down: pl.Tensor[[intermediate, hidden], pl.BF16],
            out: pl.Out[pl.Tensor[[batch, hidden], pl.BF16]],
        ) -> pl.Tensor[[batch, hidden], pl.BF16]:
            q_proj = pl.create_tensor([batch, hidden], dtype=pl.FP32)
            k_proj = pl.create_tensor([batch, kv_hidden], dtype=pl.FP32)
            v_proj = pl.create_tensor([batch, kv_hidden], dtype=pl.FP32)

            # Scope 1: input RMSNorm and the Q/K/V projections.
            for b0 in pl.range(0, batch, BATCH_TILE):
                normed_tile = pl.create_tensor([BATCH_TILE, hidden], dtype=pl.BF16)
                # Scope rmsnorm: mean square over the hidden dim, then x / rms * gamma in BF16.
                with pl.incore(name_hint="input_rmsnorm"):
                    partial_sq = pl.full([1, BATCH_TILE], dtype=pl.FP32, value=0.0)
                    for kb in pl.range(hidden_blocks):
                        k0 = kb * K_CHUNK
                        x = pl.slice(hidden_states, [BATCH_TILE, K_CHUNK], [b0, k0])
                        xf = pl.cast(x, target_type=pl.FP32)
                        sq = pl.mul(xf, xf)
                        rs = pl.row_sum(sq)
                        rs_flat = pl.reshape(rs, [1, BATCH_TILE])
                        partial_sq = pl.add(partial_sq, rs_flat)
                    ms = pl.mul(partial_sq, inv_hidden)
                    variance = pl.add(ms, eps)
                    variance_col = pl.reshape(variance, [BATCH_TILE, 1])
                    std = pl.sqrt(variance_col)
                    inv_rms = pl.recip(std)
                    for kb in pl.range(hidden_blocks):
                        k0 = kb * K_CHUNK
                        x2 = pl.slice(hidden_states, [BATCH_TILE, K_CHUNK], [b0, k0])
                        xf2 = pl.cast(x2, target_type=pl.FP32)
                        gamma = pl.slice(input_rms_weight, [1, K_CHUNK], [0, k0])
                        xn = pl.row_expand_mul(xf2, inv_rms)
                        xg = pl.col_expand_mul(xn, gamma)
                        xb = pl.cast(xg, target_type=pl.BF16)
                        normed_tile = pl.assemble(normed_tile, xb, [0, k0])
                # Scope q_proj: one kernel per output block, its accumulator stored where q_proj keeps it.
                for ob in pl.range(q_out_blocks):
                    q0 = ob * Q_OUT_CHUNK
                    with pl.incore(name_hint="q_proj"):
                        a0 = pl.slice(normed_tile, [BATCH_TILE, K_CHUNK], [0, 0])
                        w0 = pl.slice(wq, [K_CHUNK, Q_OUT_CHUNK], [0, q0])
                        q_acc = pl.matmul(a0, w0, out_dtype=pl.FP32)
                        for kb in pl.range(1, hidden_blocks):
                            k0 = kb * K_CHUNK
                            a = pl.slice(normed_tile, [BATCH_TILE, K_CHUNK], [0, k0])
                            w = pl.slice(wq, [K_CHUNK, Q_OUT_CHUNK], [k0, q0])
                            q_acc = pl.matmul_acc(q_acc, a, w)
                    q_proj = pl.assemble(q_proj, q_acc, [b0, q0])
                # Scope kv_proj: the K and V blocks.
                for ob in pl.range(kv_out_blocks):
                    kv0 = ob * KV_OUT_CHUNK
                    with pl.incore(name_hint="k_proj"):
                        ka0 = pl.slice(normed_tile, [BATCH_TILE, K_CHUNK], [0, 0])
                        kw0 = pl.slice(wk, [K_CHUNK, KV_OUT_CHUNK], [0, kv0])
                        k_acc = pl.matmul(ka0, kw0, out_dtype=pl.FP32)
                        for kb in pl.range(1, hidden_blocks):
                            k0 = kb * K_CHUNK
                            ka = pl.slice(normed_tile, [BATCH_TILE, K_CHUNK], [0, k0])
                            kw = pl.slice(wk, [K_CHUNK, KV_OUT_CHUNK], [k0, kv0])
                            k_acc = pl.matmul_acc(k_acc, ka, kw)
                    k_proj = pl.assemble(k_proj, k_acc, [b0, kv0])
                    with pl.incore(name_hint="v_proj"):
                        va0 = pl.slice(normed_tile, [BATCH_TILE, K_CHUNK], [0, 0])
                        vw0 = pl.slice(wv, [K_CHUNK, KV_OUT_CHUNK], [0, kv0])
                        v_acc = pl.matmul(va0, vw0, out_dtype=pl.FP32)
                        for kb in pl.range(1, hidden_blocks):
                            k0 = kb * K_CHUNK
                            va = pl.slice(normed_tile, [BATCH_TILE, K_CHUNK], [0, k0])
                            vw = pl.slice(wv, [K_CHUNK, KV_OUT_CHUNK], [k0, kv0])
                            v_acc = pl.matmul_acc(v_acc, va, vw)
                    v_proj = pl.assemble(v_proj, v_acc, [b0, kv0])

            # Scope 2: RoPE and the KV-cache update, then grouped-query attention.
            all_q_padded = pl.create_tensor([batch * total_q_groups * Q_HEAD_PAD, head_dim], dtype=pl.BF16)
            # Scope scratch_init: the pad rows of every padded query group are zero.
            with pl.incore(name_hint="q_pad_init"):
                for idx in pl.range(batch * total_q_groups):
                    q_zero = pl.full([Q_HEAD_PAD - Q_HEAD_BATCH, head_dim], dtype=pl.FP32, value=0.0)
                    q_zero_bf = pl.cast(q_zero, target_type=pl.BF16)
                    all_q_padded = pl.assemble(all_q_padded, q_zero_bf, [idx * Q_HEAD_PAD + Q_HEAD_BATCH, 0])
            # End of scope scratch_init.
            attn_out = pl.create_tensor([batch, hidden], dtype=pl.BF16)
            for b in pl.range(batch):
                ctx_len = pl.tensor.read(seq_lens, [b])
                pos = ctx_len - 1
                ctx_blocks = (ctx_len + SEQ_TILE - 1) // SEQ_TILE
                cos_row = pl.slice(rope_cos, [1, head_dim], [pos, 0])
                sin_row = pl.slice(rope_sin, [1, head_dim], [pos, 0])
                cos_lo = pl.slice(cos_row, [1, half_dim], [0, 0])
                cos_hi = pl.slice(cos_row, [1, half_dim], [0, half_dim])
                sin_lo = pl.slice(sin_row, [1, half_dim], [0, 0])
                sin_hi = pl.slice(sin_row, [1, half_dim], [0, half_dim])
                # Scope rope: rotate K, write the caches, rotate Q into its padded group; 8 KV heads a kernel.
                with pl.auto_incore(name_hint="rope_kv_cache"):
                    for ki in pl.parallel(0, num_kv_heads, chunk=8):
                        kv_col = ki * head_dim
                        k_lo = pl.slice(k_proj, [1, half_dim], [b, kv_col])
                        k_hi = pl.slice(k_proj, [1, half_dim], [b, kv_col + half_dim])
                        k_t1 = pl.col_expand_mul(k_lo, cos_lo)
                        k_t2 = pl.col_expand_mul(k_hi, sin_lo)
                        k_rot_lo = pl.sub(k_t1, k_t2)
                        k_t3 = pl.col_expand_mul(k_hi, cos_hi)
                        k_t4 = pl.col_expand_mul(k_lo, sin_hi)
                        k_rot_hi = pl.add(k_t3, k_t4)
                        cache_row = b * num_kv_heads * max_seq + ki * max_seq + pos
                        k_lo_bf = pl.cast(k_rot_lo, target_type=pl.BF16)
                        k_cache = pl.assemble(k_cache, k_lo_bf, [cache_row, 0])
                        k_hi_bf = pl.cast(k_rot_hi, target_type=pl.BF16)
                        k_cache = pl.assemble(k_cache, k_hi_bf, [cache_row, half_dim])
                        v_row = pl.slice(v_proj, [1, head_dim], [b, ki * head_dim])
                        v_bf = pl.cast(v_row, target_type=pl.BF16)
                        v_cache = pl.assemble(v_cache, v_bf, [cache_row, 0])
                        q_base = ki * q_per_kv
                        for qi in pl.range(Q_HEAD_BATCH):
                            q_col = (q_base + qi) * head_dim
                            q_row = b * total_q_groups * Q_HEAD_PAD + ki * Q_HEAD_PAD + qi
                            q_lo = pl.slice(q_proj, [1, half_dim], [b, q_col])
                            q_hi = pl.slice(q_proj, [1, half_dim], [b, q_col + half_dim])
                            q_t1 = pl.col_expand_mul(q_lo, cos_lo)
                            q_t2 = pl.col_expand_mul(q_hi, sin_lo)
                            q_rot_lo = pl.sub(q_t1, q_t2)
                            q_lo_bf = pl.cast(q_rot_lo, target_type=pl.BF16)
                            q_t3 = pl.col_expand_mul(q_hi, cos_hi)
                            q_t4 = pl.col_expand_mul(q_lo, sin_hi)
                            q_rot_hi = pl.add(q_t3, q_t4)
                            q_hi_bf = pl.cast(q_rot_hi, target_type=pl.BF16)
                            all_q_padded = pl.assemble(all_q_padded, q_lo_bf, [q_row, 0])
                            all_q_padded = pl.assemble(all_q_padded, q_hi_bf, [q_row, half_dim])
                # End of scope rope.
                attn_row = pl.create_tensor([1, hidden], dtype=pl.BF16)
                for gi in pl.range(total_q_groups):
                    kvh = gi // q_groups
                    qg = gi - kvh * q_groups
                    q_base = kvh * q_per_kv + qg * Q_HEAD_BATCH
                    q_row0 = b * total_q_groups * Q_HEAD_PAD + gi * Q_HEAD_PAD
                    q_padded = pl.slice(all_q_padded, [Q_HEAD_PAD, head_dim], [q_row0, 0])
                    all_raw_scores = pl.create_tensor([max_ctx_blocks * Q_HEAD_PAD, SEQ_TILE], dtype=pl.FP32)
                    all_exp_padded = pl.create_tensor([max_ctx_blocks * Q_HEAD_PAD, SEQ_TILE], dtype=pl.BF16)
                    all_oi_tmp = pl.create_tensor([max_ctx_blocks * Q_HEAD_PAD, head_dim], dtype=pl.FP32)
                    all_cur_mi = pl.create_tensor([max_ctx_blocks * Q_HEAD_BATCH, 1], dtype=pl.FP32)
                    all_cur_li = pl.create_tensor([max_ctx_blocks * Q_HEAD_BATCH, 1], dtype=pl.FP32)
                    # Scope scratch_init: zero the group's scratch, block by block.
                    for sb0 in pl.range(0, ctx_blocks, SB_BATCH):
                        with pl.incore(name_hint="scratch_init"):
                            for si in pl.range(SB_BATCH):
                                sb = sb0 + si
                                if sb < ctx_blocks:
                                    raw_zero = pl.full([Q_HEAD_PAD, SEQ_TILE], dtype=pl.FP32, value=0.0)
                                    all_raw_scores = pl.assemble(all_raw_scores, raw_zero, [sb * Q_HEAD_PAD, 0])
                                    exp_zero = pl.full([Q_HEAD_PAD, SEQ_TILE], dtype=pl.FP32, value=0.0)
                                    exp_zero_bf = pl.cast(exp_zero, target_type=pl.BF16)
                                    all_exp_padded = pl.assemble(all_exp_padded, exp_zero_bf, [sb * Q_HEAD_PAD, 0])
                                    oi_zero = pl.full([Q_HEAD_PAD, head_dim], dtype=pl.FP32, value=0.0)
                                    all_oi_tmp = pl.assemble(all_oi_tmp, oi_zero, [sb * Q_HEAD_PAD, 0])
                                    mi_init_flat = pl.full([1, Q_HEAD_BATCH], dtype=pl.FP32, value=0.0)
                                    mi_init = pl.reshape(mi_init_flat, [Q_HEAD_BATCH, 1])
                                    all_cur_mi = pl.assemble(all_cur_mi, mi_init, [sb * Q_HEAD_BATCH, 0])
                                    li_init_flat = pl.full([1, Q_HEAD_BATCH], dtype=pl.FP32, value=0.0)
                                    li_init = pl.reshape(li_init_flat, [Q_HEAD_BATCH, 1])
                                    all_cur_li = pl.assemble(all_cur_li, li_init, [sb * Q_HEAD_BATCH, 0])
                    # Scope qk: the padded query group against each SEQ_TILE block of its KV head's keys.
                    for sb0 in pl.range(0, ctx_blocks, SB_BATCH):
                        with pl.incore(name_hint="qk_matmul"):
                            for si in pl.range(SB_BATCH):
                                sb = sb0 + si
                                if sb < ctx_blocks:
                                    s0 = sb * SEQ_TILE
                                    cache_row0 = b * num_kv_heads * max_seq + kvh * max_seq + s0
                                    k_tile = pl.slice(k_cache, [SEQ_TILE, head_dim], [cache_row0, 0])
                                    raw = pl.matmul(q_padded, k_tile, b_trans=True, out_dtype=pl.FP32)
                                    all_raw_scores = pl.assemble(all_raw_scores, raw, [sb * Q_HEAD_PAD, 0])
                    # Scope softmax: scores past the context masked to -inf, block-local max and sum.
                    for sb0 in pl.range(0, ctx_blocks, SB_BATCH):
                        with pl.incore(name_hint="block_softmax"):
                            for si in pl.range(SB_BATCH):
                                sb = sb0 + si
                                if sb < ctx_blocks:
                                    s0 = sb * SEQ_TILE
                                    valid_len = pl.min(SEQ_TILE, ctx_len - s0)
                                    scores_valid = pl.slice(all_raw_scores, [Q_HEAD_BATCH, SEQ_TILE],
                                                            [sb * Q_HEAD_PAD, 0], valid_shape=[Q_HEAD_BATCH, valid_len])
                                    scores_padded = pl.fillpad(scores_valid, pad_value=pl.PadValue.min)
                                    scores = pl.mul(scores_padded, attn_scale)
                                    cur_mi = pl.row_max(scores)
                                    centred = pl.row_expand_sub(scores, cur_mi)
                                    exp_scores = pl.exp(centred)
                                    exp_bf = pl.cast(exp_scores, target_type=pl.BF16)
                                    exp_f = pl.cast(exp_bf, target_type=pl.FP32)
                                    cur_li = pl.row_sum(exp_f)
                                    all_exp_padded = pl.assemble(all_exp_padded, exp_bf, [sb * Q_HEAD_PAD, 0])
                                    all_cur_mi = pl.assemble(all_cur_mi, cur_mi, [sb * Q_HEAD_BATCH, 0])
                                    all_cur_li = pl.assemble(all_cur_li, cur_li, [sb * Q_HEAD_BATCH, 0])
                    # Scope sv: each block's BF16 exp scores times its values.
                    for sb0 in pl.range(0, ctx_blocks, SB_BATCH):
                        with pl.incore(name_hint="sv_matmul"):
                            for si in pl.range(SB_BATCH):
                                sb = sb0 + si
                                if sb < ctx_blocks:
                                    s0 = sb * SEQ_TILE
                                    cache_row0 = b * num_kv_heads * max_seq + kvh * max_seq + s0
                                    exp_tile = pl.slice(all_exp_padded, [Q_HEAD_PAD, SEQ_TILE], [sb * Q_HEAD_PAD, 0])
                                    v_tile = pl.slice(v_cache, [SEQ_TILE, head_dim], [cache_row0, 0])
                                    oi_tmp = pl.matmul(exp_tile, v_tile, out_dtype=pl.FP32)
                                    all_oi_tmp = pl.assemble(all_oi_tmp, oi_tmp, [sb * Q_HEAD_PAD, 0])
                    # Scope online_softmax: the blocks combined, normalised, written into this sequence's row.
                    with pl.incore(name_hint="online_softmax"):
                        oi = pl.slice(all_oi_tmp, [Q_HEAD_BATCH, head_dim], [0, 0])
                        mi = pl.slice(all_cur_mi, [Q_HEAD_BATCH, 1], [0, 0])
                        li = pl.slice(all_cur_li, [Q_HEAD_BATCH, 1], [0, 0])
                        for sb in pl.range(1, ctx_blocks):
                            oi_b = pl.slice(all_oi_tmp, [Q_HEAD_BATCH, head_dim], [sb * Q_HEAD_PAD, 0])
                            mi_b = pl.slice(all_cur_mi, [Q_HEAD_BATCH, 1], [sb * Q_HEAD_BATCH, 0])
                            li_b = pl.slice(all_cur_li, [Q_HEAD_BATCH, 1], [sb * Q_HEAD_BATCH, 0])
                            mi_new = pl.maximum(mi, mi_b)
                            mi_diff = pl.sub(mi, mi_new)
                            alpha = pl.exp(mi_diff)
                            mi_b_diff = pl.sub(mi_b, mi_new)
                            beta = pl.exp(mi_b_diff)
                            li_a = pl.mul(alpha, li)
                            li_b_scaled = pl.mul(beta, li_b)
                            li = pl.add(li_a, li_b_scaled)
                            oi_a = pl.row_expand_mul(oi, alpha)
                            oi_b_scaled = pl.row_expand_mul(oi_b, beta)
                            oi = pl.add(oi_a, oi_b_scaled)
                            mi = mi_new
                        ctx = pl.row_expand_div(oi, li)
                        ctx_flat = pl.reshape(ctx, [1, Q_HEAD_BATCH * head_dim])
                        ctx_bf = pl.cast(ctx_flat, target_type=pl.BF16)
                        attn_row = pl.assemble(attn_row, ctx_bf, [0, q_base * head_dim])
                attn_out = pl.assemble(attn_out, attn_row, [b, 0])

            # Scope 3: output projection, residual, post-attention RMSNorm, SwiGLU MLP, residual.
            for b0 in pl.range(0, batch, BATCH_TILE):
                resid1_tile = pl.create_tensor([BATCH_TILE, hidden], dtype=pl.FP32)
                # Scope o_proj: each output block's projection, then its residual in a second kernel.
                for ob in pl.range(q_out_blocks):
                    o0 = ob * Q_OUT_CHUNK
                    with pl.incore(name_hint="o_proj"):
                        oa0 = pl.slice(attn_out, [BATCH_TILE, K_CHUNK], [b0, 0])
                        ow0 = pl.slice(wo, [K_CHUNK, Q_OUT_CHUNK], [0, o0])
                        o_acc = pl.matmul(oa0, ow0, out_dtype=pl.FP32)
                        for kb in pl.range(1, hidden_blocks):
                            k0 = kb * K_CHUNK
                            oa = pl.slice(attn_out, [BATCH_TILE, K_CHUNK], [b0, k0])
                            ow = pl.slice(wo, [K_CHUNK, Q_OUT_CHUNK], [k0, o0])
                            o_acc = pl.matmul_acc(o_acc, oa, ow)
                    with pl.incore(name_hint="residual1"):
                        h_blk = pl.slice(hidden_states, [BATCH_TILE, Q_OUT_CHUNK], [b0, o0])
                        h_f = pl.cast(h_blk, target_type=pl.FP32)
                        r1 = pl.add(o_acc, h_f)
                        resid1_tile = pl.assemble(resid1_tile, r1, [0, o0])
                # Scope post_rmsnorm: RMSNorm of the residual, the scale computed as a row, used as a column.
                post_norm_tile = pl.create_tensor([BATCH_TILE, hidden], dtype=pl.BF16)
                with pl.incore(name_hint="post_rmsnorm"):
                    post_sq = pl.full([1, BATCH_TILE], dtype=pl.FP32, value=0.0)
                    for kb in pl.range(hidden_blocks):
                        k0 = kb * K_CHUNK
                        r = pl.slice(resid1_tile, [BATCH_TILE, K_CHUNK], [0, k0])
                        r_sq = pl.mul(r, r)
                        r_rs = pl.row_sum(r_sq)
                        r_rs_flat = pl.reshape(r_rs, [1, BATCH_TILE])
                        post_sq = pl.add(post_sq, r_rs_flat)
                    post_ms = pl.mul(post_sq, inv_hidden)
                    post_var = pl.add(post_ms, eps)
                    post_std = pl.sqrt(post_var)
                    post_inv = pl.recip(post_std)
                    for kb in pl.range(hidden_blocks):
                        k0 = kb * K_CHUNK
                        r2 = pl.slice(resid1_tile, [BATCH_TILE, K_CHUNK], [0, k0])
                        post_gamma = pl.slice(post_rms_weight, [1, K_CHUNK], [0, k0])
                        post_inv_col = pl.reshape(post_inv, [BATCH_TILE, 1])
                        rn = pl.row_expand_mul(r2, post_inv_col)
                        rg = pl.col_expand_mul(rn, post_gamma)
                        rb = pl.cast(rg, target_type=pl.BF16)
                        post_norm_tile = pl.assemble(post_norm_tile, rb, [0, k0])
                # Scope mlp: gate and up chains per output block, then SwiGLU into the MLP row block.
                mlp_tile = pl.create_tensor([BATCH_TILE, intermediate], dtype=pl.BF16)
                for mb in pl.range(mlp_out_blocks):
                    m0 = mb * MLP_OUT_CHUNK
                    with pl.incore(name_hint="gate_proj"):
                        ga0 = pl.slice(post_norm_tile, [BATCH_TILE, K_CHUNK], [0, 0])
                        gw0 = pl.slice(w_gate, [K_CHUNK, MLP_OUT_CHUNK], [0, m0])
                        gate_acc = pl.matmul(ga0, gw0, out_dtype=pl.FP32)
                        for kb in pl.range(1, hidden_blocks):
                            k0 = kb * K_CHUNK
                            ga = pl.slice(post_norm_tile, [BATCH_TILE, K_CHUNK], [0, k0])
                            gw = pl.slice(w_gate, [K_CHUNK, MLP_OUT_CHUNK], [k0, m0])
                            gate_acc = pl.matmul_acc(gate_acc, ga, gw)
                    with pl.incore(name_hint="up_proj"):
                        ua0 = pl.slice(post_norm_tile, [BATCH_TILE, K_CHUNK], [0, 0])
                        uw0 = pl.slice(w_up, [K_CHUNK, MLP_OUT_CHUNK], [0, m0])
                        up_acc = pl.matmul(ua0, uw0, out_dtype=pl.FP32)
                        for kb in pl.range(1, hidden_blocks):
                            k0 = kb * K_CHUNK
                            ua = pl.slice(post_norm_tile, [BATCH_TILE, K_CHUNK], [0, k0])
                            uw = pl.slice(w_up, [K_CHUNK, MLP_OUT_CHUNK], [k0, m0])
                            up_acc = pl.matmul_acc(up_acc, ua, uw)
                    with pl.auto_incore(name_hint="swiglu"):
                        gate_neg = pl.neg(gate_acc)
                        gate_exp = pl.exp(gate_neg)
                        gate_exp1 = pl.add(gate_exp, 1.0)
                        sigmoid = pl.recip(gate_exp1)
                        silu = pl.mul(gate_acc, sigmoid)
                        mlp = pl.mul(silu, up_acc)
                        mlp_bf = pl.cast(mlp, target_type=pl.BF16)
                        mlp_tile = pl.assemble(mlp_tile, mlp_bf, [0, m0])
                # Scope down_proj: each hidden block of the down projection, then the final residual.
                for db in pl.range(hidden_blocks):
                    d0 = db * K_CHUNK
                    with pl.incore(name_hint="down_proj"):
                        da0 = pl.slice(mlp_tile, [BATCH_TILE, MLP_OUT_CHUNK], [0, 0])
                        dw0 = pl.slice(w_down, [MLP_OUT_CHUNK, K_CHUNK], [0, d0])
                        down_acc = pl.matmul(da0, dw0, out_dtype=pl.FP32)
                        for mb in pl.range(1, mlp_out_blocks):
                            m0 = mb * MLP_OUT_CHUNK
                            da = pl.slice(mlp_tile, [BATCH_TILE, MLP_OUT_CHUNK], [0, m0])
                            dw = pl.slice(w_down, [MLP_OUT_CHUNK, K_CHUNK], [m0, d0])
                            down_acc = pl.matmul_acc(down_acc, da, dw)
                    with pl.incore(name_hint="residual2"):
                        r_blk = pl.slice(resid1_tile, [BATCH_TILE, K_CHUNK], [0, d0])
                        final = pl.add(down_acc, r_blk)
                        final_bf = pl.cast(final, target_type=pl.BF16)
                        out = pl.assemble(out, final_bf, [b0, d0])

            return out

    return DecodeLayer


def build_tensor_specs(
    batch: int = 16,
    max_seq: int = 4096,
    num_heads: int = 64,
    num_kv_heads: int = 8,
    head_dim: int = 128,
    intermediate: int = 25600,
    use_max_seq: bool = False,
):
    """The layer's inputs: centred uniform activations and caches, weights scaled by 1/sqrt(fan-in), unit
    post-norm weights, and sequence lengths uniform in 1..max_seq (all max_seq with use_max_seq)."""
    import torch
    from pypto.runtime import TensorSpec

    hidden = num_heads * head_dim
    kv_hidden = num_kv_heads * head_dim
    cache_rows = batch * num_kv_heads * max_seq

    def seq_lengths():
        if use_max_seq:
            return torch.full((batch,), max_seq, dtype=torch.int32)
        return torch.randint(1, max_seq + 1, (batch,), dtype=torch.int32)

    def projection_in():
        return torch.rand(hidden, hidden) / hidden ** 0.5

    def kv_projection_in():
        return torch.rand(hidden, kv_hidden) / hidden ** 0.5

    def from_hidden():
        return (torch.rand(hidden, intermediate) - 0.5) / hidden ** 0.5

    def square_out():
        return (torch.rand(hidden, hidden) - 0.5) / hidden ** 0.5

    def from_intermediate():
        return (torch.rand(intermediate, hidden) - 0.5) / intermediate ** 0.5

    def activations():
        return torch.rand(batch, hidden) - 0.5

    def row_weights():
        return torch.rand(1, hidden) - 0.5

    def rope_table():
        return torch.rand(max_seq, head_dim) - 0.5

    def cache():
        return torch.rand(cache_rows, head_dim) - 0.5

    def unit_row():
        return torch.ones(1, hidden)

    return [
        TensorSpec("hidden_states", [batch, hidden], torch.bfloat16, init_value=activations),
        TensorSpec("input_rms_weight", [1, hidden], torch.float32, init_value=row_weights),
        TensorSpec("wq", [hidden, hidden], torch.bfloat16, init_value=projection_in),
        TensorSpec("wk", [hidden, kv_hidden], torch.bfloat16, init_value=kv_projection_in),
        TensorSpec("wv", [hidden, kv_hidden], torch.bfloat16, init_value=kv_projection_in),
        TensorSpec("seq_lens", [batch], torch.int32, init_value=seq_lengths),
        TensorSpec("rope_cos", [max_seq, head_dim], torch.float32, init_value=rope_table),
        TensorSpec("rope_sin", [max_seq, head_dim], torch.float32, init_value=rope_table),
        TensorSpec("k_cache", [cache_rows, head_dim], torch.bfloat16, init_value=cache),
        TensorSpec("v_cache", [cache_rows, head_dim], torch.bfloat16, init_value=cache),
        TensorSpec("wo", [hidden, hidden], torch.bfloat16, init_value=square_out),
        TensorSpec("post_rms_weight", [1, hidden], torch.float32, init_value=unit_row),
        TensorSpec("w_gate", [hidden, intermediate], torch.bfloat16, init_value=from_hidden),
        TensorSpec("w_up", [hidden, intermediate], torch.bfloat16, init_value=from_hidden),
        TensorSpec("w_down", [intermediate, hidden], torch.bfloat16, init_value=from_intermediate),
        TensorSpec("out", [batch, hidden], torch.bfloat16, is_output=True),
    ]
