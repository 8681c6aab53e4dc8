"""programs/qwen3_decode.py, the decode layer in PyPTO's seed-era dialect, imports to exactly the program of
programs/qwen3_decode.yaml: the same instructions line for line, the same tensors and constants, and runs
with the same output bits and the same cycles in every scope."""

from __future__ import annotations

from pathlib import Path

import pytest

from npusim.frontend import load_program
from npusim.runner import RunOptions, run

from .helpers import HERE
from .test_yaml_writer import same_instrs

REPO = HERE.parents[1]
PY, YAML = REPO / "programs" / "qwen3_decode.py", REPO / "programs" / "qwen3_decode.yaml"
TINY = {"num_heads": 8, "num_kv_heads": 1, "head_dim": 64, "intermediate": 512, "max_seq": 256}


def test_the_rendering_imports_to_the_yaml_program() -> None:
    py, yml = load_program(PY), load_program(YAML)
    same_instrs(py.body, yml.body)
    py_t = {n: (t.shape, t.dtype, t.role, t.init) for n, t in py.tensors.items()}
    yml_t = {n: (t.shape, t.dtype, t.role, t.init) for n, t in yml.tensors.items()}
    assert list(py_t) == list(yml_t)  # the declaration order seeds the inputs
    assert py_t.pop("seq_lens")[3] == "randint(1, max_seq + 1)"  # the harness's `if use_max_seq:` branch
    assert yml_t.pop("seq_lens")[3] == "randint(1 + all_max_seq * (max_seq - 1), max_seq + 1)"
    assert py_t == yml_t
    assert {k: v for k, v in yml.consts.items() if k != "all_max_seq"} == \
        {k: py.consts[k] for k in yml.consts if k != "all_max_seq"}
    assert py.reference == yml.reference == "qwen3_decode"


def _report(path: Path, tmp: Path, **kw):
    return run(RunOptions(program=path, out=tmp, quiet=True, plot=False, trace=False, **kw)).report


@pytest.mark.parametrize(("py_sets", "yaml_sets"), [({}, {}), ({"use_max_seq": True}, {"all_max_seq": 1})],
                         ids=["random_lengths", "max_seq"])
def test_same_bits_and_cycles_at_tiny_size(tmp_path: Path, py_sets: dict, yaml_sets: dict) -> None:
    a = _report(PY, tmp_path / "py", overrides={**TINY, **py_sets})
    b = _report(YAML, tmp_path / "yaml", preset="tiny", overrides=yaml_sets)
    assert a.check is not None and a.check.passed and b.check is not None and b.check.passed
    assert a.outputs == b.outputs
    assert a.scopes == b.scopes and a.total == b.total


def test_same_cycles_at_full_size(tmp_path: Path) -> None:
    a = _report(PY, tmp_path / "py", numerics=False)
    b = _report(YAML, tmp_path / "yaml", numerics=False)
    assert a.total.tasks == b.total.tasks == 1503
    assert a.scopes == b.scopes and a.total == b.total
