"""Running a program: values, the compiler to closures, the lowering of ops to the hardware, and limits."""

from .compile import Interpreter, execute
from .limits import RunLimits, available_memory, check_gm_budget, check_memory

__all__ = ["Interpreter", "RunLimits", "available_memory", "check_gm_budget", "check_memory", "execute"]
