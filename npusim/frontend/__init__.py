"""Reading users' programs: safe located YAML, the expression language, the program model every frontend
produces, and the seeded initial values of input tensors."""

from .params import parse_overrides
from .program import Program, Tensor
from .yaml_program import load_program

__all__ = ["Program", "Tensor", "load_program", "parse_overrides"]
