"""Cost rules, one module per kind: `vector.py` (the vector-rule table: where the cost of exp is), `dma.py`
(loads, stores and moves along the config's routes), `cube.py` (matmul and the scalar pipe), and `model.py`
(the cost model that picks the rule for a signature)."""

from .base import CostError, Step
from .model import CostModel
from .vector import VECTOR_RULES, VectorRule

__all__ = ["VECTOR_RULES", "CostError", "CostModel", "Step", "VectorRule"]
