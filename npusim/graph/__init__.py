"""The neutral task graph: op signatures, tasks and their GM footprints, dependencies, and the execution
record that the interpreter writes and the timing and output stages read."""

from .dependencies import coalesce, dependencies
from .signatures import ComputeSig, DmaSig, MoveSig, OpSig, TileSig, result_tile
from .tasks import Execution, ExternWork, FinalTensor, GmAccess, InstrInfo, MovedWindows, OpRecord, Region, Task

__all__ = ["ComputeSig", "DmaSig", "Execution", "ExternWork", "FinalTensor", "GmAccess", "InstrInfo", "MoveSig",
           "MovedWindows", "OpRecord", "OpSig", "Region", "Task", "TileSig", "coalesce", "dependencies", "result_tile"]
