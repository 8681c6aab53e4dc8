"""Hardware configs: pydantic models of every parameter the cost rules and the timing engine use.

Configs live in `configs/NAME.yaml`; `--config` takes a name or a path. Unknown keys are errors (with a
suggestion), values are not coerced (strict mode), every number is checked against a physically sensible
range whose reason the model states, and a bad value is reported with its key, value, range and reason.
Loading also checks that the config has everything a run needs (`requirements.py`). Units are in the key
names. The shipped configs are package data (`npusim/configs`, a link to the top-level
`configs/` in a checkout), so an installed npusim finds them wherever it runs.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from npusim.defaults import DEFAULT_CONFIG
from npusim.errors import ConfigError, Location, did_you_mean
from npusim.frontend.yaml_source import YamlDoc, YamlLimits, load_yaml, pydantic_message
from npusim.vocabulary import MAX_BUFFER_BYTES, Buffer

CONFIG_DIR = Path(str(resources.files("npusim") / "configs"))  # the shipped configs, as package data



def _bounded(kind: type, why: str, **bounds: float) -> Any:
    """A number in a physically sensible range, with the reason the range is what it is (shown in messages).
    NaN and infinity are never in range."""
    return Annotated[kind, Field(allow_inf_nan=False, description=why, **bounds)]


Cycles = _bounded(float, "a fixed cost in cycles: the documented ones are 0 to 500, 1e7 is 5 ms", ge=0, le=1e7)
Micros = _bounded(float, "a runtime cost in us: the documented ones are 0.05 to 2.2, 1e4 is 10 ms", ge=0, le=1e4)
Rate = _bounded(float, "0.01 B/cycle (20 MB/s at 2 GHz) is slower than any DMA engine and 4096 B/cycle 16x the "
                       "fastest documented path (256)", ge=0.01, le=4096)
Slope = _bounded(float, "cycles per repeat or register: the documented ones are below 10", ge=0, le=1e4)
BufferBytes = _bounded(int, "an on-chip buffer: 1 KiB to 1 GiB (910B: 64 KiB to 512 KiB)", ge=1024,
                       le=MAX_BUFFER_BYTES)


class _Strict(BaseModel):
    """Unknown keys are errors, and values are not coerced: `true` and "24" are not numbers."""

    model_config = ConfigDict(extra="forbid", strict=True)


class PathCost(_Strict):
    """One data path. A transfer (one DMA call) occupies the path's engine for `issue_cycles + charged_bytes /
    rate`, and its data arrive `latency_cycles` after the engine is done (`l2_hit_latency_cycles` instead for a
    GM read whose data are in L2); the engine takes the next transfer meanwhile. The rate is `bytes_per_cycle`,
    or `short_run_bytes_per_cycle` for a GM -> L1 (ND -> NZ) transfer whose contiguous GM runs are no longer
    than one L2 line. A GM write holds its engine until the write is acknowledged: at least
    `write_completion_cycles`."""

    issue_cycles: Cycles
    bytes_per_cycle: Rate
    write_completion_cycles: Cycles = 0.0  # GM writes: the engine holds a store at least this long (its write ack)
    latency_cycles: Cycles = 0.0
    l2_hit_latency_cycles: Cycles | None = None  # GM reads only
    short_run_bytes_per_cycle: Rate | None = None  # GM reads only


DtypeName = Literal["bf16", "fp16", "fp32", "int32"]


class Intrinsic(_Strict):
    """One A2/A3 vector intrinsic: head + cycles_per_repeat x repeats (+ tail when the pipe drains). The slope
    may depend on the element type (`cycles_per_repeat_by_dtype`, else `cycles_per_repeat`)."""

    head_cycles: Cycles
    cycles_per_repeat: Slope
    tail_cycles: Cycles
    cycles_per_repeat_by_dtype: dict[DtypeName, Slope] = {}

    def slope(self, dtype: str) -> float:
        return self.cycles_per_repeat_by_dtype.get(dtype, self.cycles_per_repeat)  # type: ignore[call-overload]


class UbCopy(_Strict):
    """copy_ubuf_to_ubuf (a tile-to-tile copy inside UB): per call plus per 32-B block moved."""

    cycles_per_call: Cycles
    cycles_per_block: Cycles
    block_bytes: _bounded(int, "the granule of a UB copy (910B: 32 B)", ge=1, le=4096)


class Vector(_Strict):
    """The A2/A3 vector unit: instructions are sequences of repeat / count-mode intrinsic calls."""

    bytes_per_repeat: _bounded(int, "a repeat is whole 32-B blocks (910B: 8 blocks, 256 B)", ge=32, le=4096,
                               multiple_of=32)
    max_repeat: _bounded(int, "the repeat field of an instruction (910B: 8 bits, 255)", ge=1, le=65535)
    ctrl_cycles: Cycles
    barrier_cycles: Cycles
    count_mode_floor_cycles: Cycles
    flag_round_trip_cycles: Cycles  # set_flag/wait_flag V->S, a scalar read, S->V: the vector pipe drains
    ub_copy: UbCopy
    intrinsics: dict[str, Intrinsic]


class VfLoop(_Strict):
    """The cost of one A5 vector function: a 1-D loop over the registers of a contiguous tile, or a 2-D loop
    of rows x registers per row."""

    start_1d_cycles: Cycles
    cycles_per_register_1d: Slope
    start_2d_cycles: Cycles
    cycles_per_row_2d: Slope
    cycles_per_register_2d: Slope


class VfClass(VfLoop):
    """A class of A5 vector functions with one loop body cost, per element type where it differs."""

    by_dtype: dict[DtypeName, VfLoop] = {}

    def loop(self, dtype: str) -> VfLoop:
        return self.by_dtype.get(dtype, self)  # type: ignore[call-overload]


class VectorFunctions(_Strict):
    """The A5 vector unit: every vector instruction is one vector function (a register loop)."""

    register_bytes: _bounded(int, "a vector register is whole 32-B blocks (950: 256 B)", ge=32, le=4096,
                             multiple_of=32)
    drain_cycles: Cycles  # the part of a function's start that overlaps a following function (its drain)
    classes: dict[str, VfClass]


class Cube(_Strict):
    head_cycles: Cycles
    fractal_m: _bounded(int, "rows of a cube fractal (910B: 16)", ge=1, le=1024)
    fractal_n: _bounded(int, "columns of a cube fractal (910B: 16)", ge=1, le=1024)
    fractal_k_bytes: _bounded(int, "k0 = fractal_k_bytes / element size must be a whole number of elements of "
                                   "the widest cube operand, fp32 (910B: 32 B)", ge=4, le=4096, multiple_of=4)
    cycles_per_fractal: dict[Literal["bf16", "fp16", "fp32", "int8", "fp8e4m3fn", "fp8e5m2"],
                             _bounded(float, "cycles per fractal (910B: 1 or 2)", gt=0, le=1e3)]


class Hbm(_Strict):
    """HBM as the cores see it: the read bandwidth all of them together achieve, shared by every running task's
    traffic that misses L2."""

    read_bytes_per_s: _bounded(float, "1 GB/s (one DDR channel) to 1 PB/s (910B: 1.45 TB/s achievable)", ge=1e9,
                               le=1e15)


class L2(_Strict):
    """The chip's L2 cache in front of HBM: its size, its line, and the sector a read fills (docs/timing-model.md
    §6.3)."""

    bytes: _bounded(int, "0 (no L2) to 1 TiB (910B: 192 MiB)", ge=0, le=1 << 40)
    line_bytes: _bounded(int, "32 B to 64 KiB (910B: 512 B)", ge=32, le=1 << 16)
    sector_bytes: _bounded(int, "32 B to 64 KiB (910B: 128 B)", ge=32, le=1 << 16)


class Runtime(_Strict):
    """One generation of the AICPU runtime (simpler): an orchestrator thread submitting tasks in program order,
    scheduler threads each owning a contiguous block of clusters and spending CPU time on every subtask it
    dispatches and every completion it handles, and the per-task costs on the AICore side."""

    description: str = ""
    orchestrator_submit_us: Micros  # per task, in program order
    scheduler_threads: _bounded(int, "AICPU scheduler threads (910B: 3)", ge=1, le=64)
    dispatch_us: Micros  # scheduler-thread time per dispatched subtask (one per core a task runs on)
    completion_us: Micros  # scheduler-thread time per completed subtask (fan-out included)
    pre_dispatch: bool  # a busy core may hold one more task, started when the running one ends
    dispatch_latency_us: Micros  # dispatch -> start on an idle core
    task_switch_us: Micros  # end of the running task -> start of the pre-dispatched one
    finish_latency_us: Micros  # AICore end -> the scheduler thread sees the completion
    exec_fixed_us: Micros  # per task, between the AICore's start and end stamps, outside the kernel's ops


class HardwareConfig(_Strict):
    name: str
    description: str = ""
    clock_hz: _bounded(float, "100 MHz to 10 GHz (910B: 1.85 GHz)", ge=1e8, le=1e10)
    num_aic: _bounded(int, "cube cores (910B: 24)", ge=1, le=4096)
    num_aiv: _bounded(int, "vector cores (910B: 48), at least one per AIC: a mix kernel runs on an AIC and an AIV "
                           "of its cluster", ge=1, le=8192)
    ub_bytes: BufferBytes
    l1_bytes: BufferBytes
    l0a_bytes: BufferBytes
    l0b_bytes: BufferBytes
    l0c_bytes: BufferBytes
    hbm: Hbm
    l2: L2
    dma_block_bytes: _bounded(int, "the granule of a GM run (910B: 32 B)", ge=1, le=4096)
    dma: dict[str, PathCost]
    routes: dict[str, list[str]]
    isa: Literal["a2a3", "a5"]  # which instruction sequences the vector rules follow
    vector: Vector | None = None  # a2a3: repeat / count-mode intrinsics
    vector_functions: Annotated[VectorFunctions | None, Field(validate_default=True)] = None  # a5: vector functions
    cube: Cube
    cross_core_sync_cycles: Cycles  # an AIC <-> AIV flag where data change core
    runtimes: dict[str, Runtime]
    runtime: str  # the runtime generation a run uses (npusim run --runtime picks another of `runtimes`)
    reshape_cycles: Cycles
    scalar_store_cycles: Cycles  # one element stored into UB by the scalar unit (TCI per element, TSETVAL)

    @field_validator("runtime")
    @classmethod
    def _a_known_runtime(cls, value: str, info: ValidationInfo) -> str:
        known = info.data.get("runtimes")
        if known is not None and value not in known:
            raise ValueError(f"not one of runtimes ({', '.join(known)}){did_you_mean(value, known)}")
        return value

    @field_validator("vector_functions")
    @classmethod
    def _one_vector_section(cls, value: VectorFunctions | None, info: ValidationInfo) -> VectorFunctions | None:
        """isa a2a3 prices from `vector`, a5 from `vector_functions`: exactly the one its family uses."""
        isa, vector = info.data.get("isa"), info.data.get("vector")
        if isa == "a2a3" and (vector is None or value is not None):
            raise ValueError("isa a2a3 takes a 'vector' section (intrinsics) and no 'vector_functions'")
        if isa == "a5" and (value is None or vector is not None):
            raise ValueError("isa a5 takes a 'vector_functions' section and no 'vector' (the A2/A3 intrinsics)")
        return value

    def buffer_bytes(self, buf: Buffer) -> int:
        return {"UB": self.ub_bytes, "L1": self.l1_bytes, "L0A": self.l0a_bytes, "L0B": self.l0b_bytes,
                "L0C": self.l0c_bytes}[buf]

    @property
    def hbm_bytes_per_s(self) -> float:
        return self.hbm.read_bytes_per_s

    @property
    def hbm_bytes_per_cycle(self) -> float:
        return self.hbm.read_bytes_per_s / self.clock_hz

    @property
    def active_runtime(self) -> Runtime:
        """The runtime generation this config runs with (`runtime:`)."""
        return self.runtimes[self.runtime]

    def with_runtime(self, name: str) -> HardwareConfig:
        """The same chip under another of its runtime generations (`npusim run --runtime NAME`)."""
        if name not in self.runtimes:
            raise ConfigError(f"--runtime: {self.name} has no runtime {name!r}{did_you_mean(name, self.runtimes)}; "
                              f"runtimes: {', '.join(self.runtimes)}")
        return self.model_copy(update={"runtime": name})

    def us_to_cycles(self, us: float) -> float:
        return us * 1e-6 * self.clock_hz


def _describe(doc: YamlDoc, exc: ValidationError) -> ConfigError:
    vf = ("vector_functions",)
    models = {(): HardwareConfig, ("dma", "*"): PathCost, ("vector",): Vector, ("vector", "intrinsics", "*"): Intrinsic,
              ("vector", "ub_copy"): UbCopy, vf: VectorFunctions, (*vf, "classes", "*"): VfClass,
              (*vf, "classes", "*", "by_dtype", "*"): VfLoop, ("cube",): Cube, ("hbm",): Hbm, ("l2",): L2,
              ("runtimes", "*"): Runtime}
    message, where = pydantic_message(doc, exc, models)
    return ConfigError(message, where)


def resolve_config_path(name_or_path: str) -> Path:
    """A path to a YAML file, or a config name (`ascend910b`) looked up in ./configs, then in npusim's own
    configs directory."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or candidate.exists() or "/" in name_or_path:
        return candidate
    directories = (Path("configs"), CONFIG_DIR)
    for directory in directories:
        path = directory / f"{name_or_path}.yaml"
        if path.is_file():
            return path
    known = sorted({p.stem for d in directories for p in d.glob("*.yaml")})
    raise ConfigError(
        f"no config named {name_or_path!r}{did_you_mean(name_or_path, known)}; known: {', '.join(known)} "
        "(or give a path to a YAML file)"
    )


def config_label(path: Path) -> str:
    """How a report names a config file: as found (relative to the working directory, or as given), and a
    shipped config as `<npusim>/configs/NAME.yaml`, so the label does not depend on where npusim is installed."""
    if path.resolve().parent == CONFIG_DIR.resolve() and not path.is_relative_to(Path("configs")):
        return f"<npusim>/configs/{path.name}"
    return str(path)


def config_sha256(hw: HardwareConfig) -> str:
    """sha256 of a config's resolved values (canonical JSON: sorted keys, no comments or formatting), so two
    files that say the same thing hash the same and an edited copy that keeps its `name:` does not."""
    text = json.dumps(hw.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def load_config(name_or_path: str = DEFAULT_CONFIG, limits: YamlLimits | None = None) -> HardwareConfig:
    path = resolve_config_path(name_or_path)
    doc = load_yaml(path, limits or YamlLimits(), what="config")
    if not isinstance(doc.data, dict):
        raise ConfigError("a config is a YAML mapping", Location(str(path), 1, 1))
    try:
        hw = HardwareConfig.model_validate(doc.data)
    except ValidationError as exc:
        raise _describe(doc, exc) from None
    from .requirements import check_requirements  # it reads the cost rules, which import this module

    check_requirements(hw, doc)
    return hw
