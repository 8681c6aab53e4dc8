"""Reading users' programs: safe located YAML, the expression language, the program model every frontend
produces, and the seeded initial values of input tensors. `load_program` reads a `.py` file as a PyPTO
program (frontend/pypto, never executed) and anything else as a YAML program; `--init NAME=RULE` replaces a
tensor's init rule in either."""

from __future__ import annotations

from pathlib import Path

from npusim.errors import ProgramError, did_you_mean

from .expressions import ExprLimits
from .inputs import parse_init
from .params import parse_overrides
from .program import Program, Tensor
from .yaml_program import load_program as load_yaml_program
from .yaml_source import YamlLimits

__all__ = ["Program", "Tensor", "load_program", "parse_inits", "parse_overrides"]


def parse_inits(pairs: list[str]) -> dict[str, str]:
    """`--init NAME=RULE` pairs (the rule as an init string: `uniform(-0.5, 0.5)`, `full(3)`, ...)."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, rule = pair.partition("=")
        if not sep or not name.strip() or not rule.strip():
            raise ProgramError(f"--init expects NAME=RULE, got {pair!r}")
        out[name.strip()] = rule.strip()
    return out


def load_program(
    path: str | Path,
    preset: str | None = None,
    overrides: dict[str, int | float] | None = None,
    yaml_limits: YamlLimits | None = None,
    expr_limits: ExprLimits | None = None,
    inits: dict[str, str] | None = None,
) -> Program:
    """A program from a YAML file or, for `.py`, from a PyPTO file."""
    yaml_limits = yaml_limits or YamlLimits()
    if Path(path).suffix == ".py":
        from .pypto import load_pypto

        return load_pypto(path, preset, overrides, yaml_limits.max_bytes, expr_limits, inits)
    program = load_yaml_program(path, preset, overrides, yaml_limits, expr_limits)
    for name, rule in (inits or {}).items():
        tensor = program.tensors.get(name)
        if tensor is None:
            raise ProgramError(f"--init {name}: no such tensor{did_you_mean(name, program.tensors)}; tensors: "
                               f"{', '.join(program.tensors)}")
        if tensor.role not in ("input", "inout"):
            raise ProgramError(f"--init {name}: {name} is {'an' if tensor.role == 'output' else 'a'} {tensor.role} "
                               "tensor (only inputs and inouts have init rules)")
        tensor.init = rule
        parse_init(tensor, program)
    return program
