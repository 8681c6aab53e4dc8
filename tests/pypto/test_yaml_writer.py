"""`npusim import`: the YAML written for a PyPTO program loads back to the same program (consts, tensors,
instructions) and runs to the same bits and cycles; derived constants stay expressions, so a `--set` on the
YAML moves what the same `--set` on the .py moves."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from npusim.frontend import load_program
from npusim.frontend.program import ForLoop, IfBlock, Instr, KernelBlock, OpCall, Program, ScalarAssign, ScopeBlock
from npusim.frontend.pypto import import_pypto
from npusim.frontend.pypto.to_yaml import to_yaml
from npusim.runner import RunOptions, run

from .helpers import HERE, PROGRAMS

RENDERING = HERE.parents[1] / "programs" / "qwen3_decode.py"
ALL = [*sorted(PROGRAMS.glob("*.py")), PROGRAMS / "jit" / "model.py", RENDERING]
TINY = {"num_heads": 8, "num_kv_heads": 1, "head_dim": 64, "intermediate": 512, "max_seq": 256}


def same_instrs(a: list[Instr], b: list[Instr], stages_written: bool = True) -> None:
    """Equal instruction trees: kind, text, names, loop kinds, and every argument's syntax."""
    assert len(a) == len(b), ([i.text for i in a], [i.text for i in b])
    for x, y in zip(a, b, strict=True):
        assert type(x) is type(y) and x.text == y.text, (x.text, y.text)
        if isinstance(x, OpCall):
            assert x.spec.name == y.spec.name and x.target == y.target  # type: ignore[attr-defined]
            dump = {k: ast.dump(v) if isinstance(v, ast.AST) else v for k, v in x.args.items()}
            assert dump == {k: ast.dump(v) if isinstance(v, ast.AST) else v
                            for k, v in y.args.items()}  # type: ignore[attr-defined]
        elif isinstance(x, ScalarAssign):
            assert ast.dump(x.expr) == ast.dump(y.expr)  # type: ignore[attr-defined]
        elif isinstance(x, ForLoop):
            assert (x.var, x.parallel) == (y.var, y.parallel)  # type: ignore[attr-defined]
            assert not stages_written or x.stages == y.stages  # type: ignore[attr-defined]
            same_instrs(x.body, y.body, stages_written)  # type: ignore[attr-defined]
        elif isinstance(x, IfBlock):
            same_instrs(x.then, y.then, stages_written)  # type: ignore[attr-defined]
            same_instrs(x.orelse, y.orelse, stages_written)  # type: ignore[attr-defined]
        elif isinstance(x, KernelBlock | ScopeBlock):
            assert x.name == y.name  # type: ignore[attr-defined]
            same_instrs(x.body, y.body, stages_written)  # type: ignore[attr-defined]


def same_program(py: Program, yml: Program, stages_written: bool = True) -> None:
    assert py.name == yml.name and py.reference == yml.reference
    assert {n: (t.shape, t.dtype, t.role, t.init) for n, t in py.tensors.items()} == \
        {n: (t.shape, t.dtype, t.role, t.init) for n, t in yml.tensors.items()}
    assert all(py.consts[k] == v for k, v in yml.consts.items())
    same_instrs(py.body, yml.body, stages_written)


def written(path: Path, tmp_path: Path, **kw) -> Path:
    out = tmp_path / f"{path.stem}.yaml"
    out.write_text(to_yaml(import_pypto(path, **kw)))
    return out


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.stem)
def test_the_yaml_loads_back_to_the_same_program(path: Path, tmp_path: Path) -> None:
    yml = written(path, tmp_path)
    text = yml.read_text()
    same_program(load_program(path), load_program(yml))  # pl.pipeline's stages included: pipeline(..., stage=F)
    assert path.stem != "control" or ", stage=" in text


def test_the_yaml_runs_to_the_same_bits_and_cycles(tmp_path: Path) -> None:
    yml = written(RENDERING, tmp_path)
    reports = [run(RunOptions(program=p, overrides=TINY, out=tmp_path / p.suffix[1:], quiet=True, plot=False,
                              trace=False)).report for p in (RENDERING, yml)]
    assert reports[0].check is not None and reports[0].check.passed
    assert reports[0].outputs == reports[1].outputs
    assert reports[0].scopes == reports[1].scopes and reports[0].total == reports[1].total


def test_derived_constants_stay_expressions(tmp_path: Path) -> None:
    """ROWS is a param; TILE = ROWS // 4 a let; `--set ROWS=128` on the YAML gives what it gives on the .py."""
    params = PROGRAMS / "params.py"
    yml = written(params, tmp_path)
    text = yml.read_text()
    assert "  ROWS: 64\n" in text and "  TILE: ROWS // 4\n" in text and "  rows: ROWS\n" in text
    assert "  - not (cols > 256)  # " in text and "  - rows % TILE == 0  # " in text
    same_program(load_program(params, overrides={"ROWS": 128}), load_program(yml, overrides={"ROWS": 128}))


def test_a_set_before_import_is_written_as_the_value(tmp_path: Path) -> None:
    yml = written(PROGRAMS / "params.py", tmp_path, overrides={"TILE": 8})
    assert "  TILE: 8\n" in yml.read_text()
    assert load_program(yml).consts["tiles"] == 8


def test_chunk_structure_assumptions_become_requirements(tmp_path: Path) -> None:
    """The nested chunk loops interchange as they do because BLOCKS // 2 > 0 and BLOCKS % 2 == 0: an edit
    of the YAML that changes that fails instead of running a different program."""
    yml = written(PROGRAMS / "chunks.py", tmp_path)
    assert "BLOCKS % 2 == 0" in yml.read_text()
    load_program(yml)
    with pytest.raises(Exception, match="requirement failed: BLOCKS % 2 == 0"):
        load_program(yml, overrides={"BLOCKS": 5})


def test_the_cli_imports_and_compares_py_with_yaml(tmp_path: Path, cli) -> None:
    from npusim.cli import main

    source = PROGRAMS / "params.py"
    out = tmp_path / "params.yaml"
    result = cli.invoke(main, ["import", str(source), "-o", str(out), "--set", "ROWS=128"])
    assert result.exit_code == 0 and result.output == f"{out}: written ({out.read_text().count(chr(10))} lines)\n"
    assert "  ROWS: 128\n" in out.read_text()
    refused = cli.invoke(main, ["import", str(source), "-o", str(source)])
    assert refused.exit_code == 2 and "refusing to overwrite the program being imported" in refused.output
    compared = cli.invoke(main, ["compare", str(source), str(out), "--set", "ROWS=128", "--out", str(tmp_path / "c")])
    assert compared.exit_code == 0, compared.output
    assert "outputs: bit-identical" in compared.output
