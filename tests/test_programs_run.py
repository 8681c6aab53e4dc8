"""The shipped programs run and pass their references; runs are reproducible; the Qwen3 decode layer's two
variants give the same bits on both configs, with task counts worked out by hand from the spec."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from npusim.cli import main
from npusim.runner import RunOptions, run

from .conftest import PROGRAMS

EXAMPLES = ["matmul", "rms_norm", "softmax", "qwen3_decode", "qwen3_decode_full_init"]


def tiny(name: str, tmp_path: Path, **kw) -> dict:
    opts = dict(program=PROGRAMS / f"{name}.yaml", preset="tiny", out=tmp_path / name, quiet=True, plot=False,
                trace=False)
    opts.update(kw)
    return run(RunOptions(**opts)).report.model_dump(mode="json")  # as report.json holds it


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_passes_its_reference_and_is_reproducible(name: str, tmp_path: Path) -> None:
    first = tiny(name, tmp_path / "a")
    second = tiny(name, tmp_path / "b")
    assert first["check"]["passed"], first["check"]
    assert first["outputs"] == second["outputs"]
    assert all(o["sha256"] for o in first["outputs"].values())
    other_seed = tiny(name, tmp_path / "c", seed=1)
    assert other_seed["outputs"] != first["outputs"]


def test_check_fails_loudly_on_a_wrong_result(tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reference that disagrees makes the run exit 3 with the check marked failed."""
    from npusim import references

    broken = references.Reference("matmul", lambda inputs, c: {"c": np.zeros((c["M"], c["N"]))})
    monkeypatch.setitem(references.REFERENCES, "matmul", broken)
    result = cli.invoke(main, ["run", str(PROGRAMS / "matmul.yaml"), "--preset", "tiny", "--out",
                               str(tmp_path / "o"), "--no-plot", "--no-trace"])
    assert result.exit_code == 3
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["check"]["passed"] is False and report["check"]["outputs"]["c"]["mismatches"] > 0


def test_qwen3_variants_and_configs_give_the_same_bits(tmp_path: Path) -> None:
    reports = {
        (name, config): tiny(name, tmp_path / config, config=config)
        for name in ("qwen3_decode", "qwen3_decode_full_init")
        for config in ("ascend910b", "ascend950")
    }
    digests = {key: {n: o["sha256"] for n, o in r["outputs"].items()} for key, r in reports.items()}
    first = next(iter(digests.values()))
    assert set(first) == {"out", "k_cache", "v_cache"}
    assert all(d == first for d in digests.values())
    assert all(r["check"]["passed"] for r in reports.values())


def _hand_task_counts(c: dict, seq_lens: np.ndarray) -> dict[str, int]:
    """Task counts of the spec (docs/sources.md SPEC): scope 1 is one RMSNorm + one kernel per Q block + one per K and
    per V block; scope 2 is the pad-row init kernel, then per sequence the RoPE kernels (heads in chunks) and
    per q group init/QK/softmax/SV kernels per SB_BATCH blocks plus one online-softmax kernel (the RoPE heads
    in kernels of 8 plus one for the remainder, as auto_incore splits the seed's chunked loop); scope 3 is
    per batch tile two kernels per O block, one post-norm, three per MLP block, two per down block."""
    tiles = c["batch"] // c["BATCH_TILE"]
    hidden = c["num_heads"] * c["head_dim"]
    q_out, kv_out = hidden // c["Q_OUT_CHUNK"], c["num_kv_heads"] * c["head_dim"] // c["KV_OUT_CHUNK"]
    mlp_out, hidden_blocks = c["intermediate"] // c["MLP_OUT_CHUNK"], hidden // c["K_CHUNK"]
    groups = c["num_kv_heads"] * (c["num_heads"] // c["num_kv_heads"] // c["Q_HEAD_BATCH"])
    rope_kernels = c["num_kv_heads"] // 8 + (c["num_kv_heads"] % 8 > 0)  # the seed's parallel(..., chunk=8)
    per_seq = [rope_kernels + groups * (4 * math.ceil(math.ceil(int(s) / c["SEQ_TILE"]) / c["SB_BATCH"]) + 1)
               for s in seq_lens]
    return {
        "scope1": tiles * (1 + q_out + 2 * kv_out),
        "scope2": 1 + sum(per_seq),
        "scope3": tiles * (2 * q_out + 1 + 3 * mlp_out + 2 * hidden_blocks),
    }


@pytest.mark.parametrize("preset", ["tiny"])
def test_qwen3_task_counts_match_the_spec(preset: str, tmp_path: Path) -> None:
    from npusim.frontend import load_program
    from npusim.frontend.inputs import initial_values

    prog = load_program(PROGRAMS / "qwen3_decode.yaml", preset=preset)
    seq_lens = initial_values(prog, 0, only={"seq_lens"})["seq_lens"]
    expected = _hand_task_counts(prog.consts, seq_lens)
    assert expected == {"scope1": 11, "scope2": 97, "scope3": 31}  # tiny: 1 + 8 + 2; 1 + 16 x 6; 16 + 1 + 6 + 8
    report = tiny("qwen3_decode", tmp_path, numerics=False)
    counts = {s["name"]: s["tasks"] for s in report["scopes"] if "/" not in s["name"]}
    assert counts == expected
    assert report["total"]["tasks"] == sum(expected.values())
