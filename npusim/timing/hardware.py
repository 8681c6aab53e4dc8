"""Hardware configs: pydantic models of every parameter the cost rules and the timing engine use.

Configs live in `configs/NAME.yaml`; `--config` takes a name or a path. Unknown keys are errors (with a
suggestion), values are not coerced (strict mode), every number is checked against a physically sensible
range whose reason the model states, and a bad value is reported with its key, value, range and reason.
Loading also checks that the config has everything a run needs (`requirements.py`). Units are in the key
names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from npusim.errors import ConfigError, Location, did_you_mean
from npusim.frontend.yaml_source import YamlDoc, YamlLimits, load_yaml, pydantic_message
from npusim.vocabulary import MAX_BUFFER_BYTES, Buffer

CONFIG_DIR = Path(__file__).resolve().parent.parent.parent / "configs"
DEFAULT_CONFIG = "ascend910b"


def _bounded(kind: type, why: str, **bounds: float) -> Any:
    """A number in a physically sensible range, with the reason the range is what it is (shown in messages).
    NaN and infinity are never in range."""
    return Annotated[kind, Field(allow_inf_nan=False, description=why, **bounds)]


Cycles = _bounded(float, "a fixed cost in cycles: the documented ones are 0 to 300, 1e7 is 5 ms", ge=0, le=1e7)
Micros = _bounded(float, "a runtime latency in us: the documented ones are 0.05 to 0.8, 1e4 is 10 ms", ge=0, le=1e4)
BufferBytes = _bounded(int, "an on-chip buffer: 1 KiB to 1 GiB (910B: 64 KiB to 512 KiB)", ge=1024,
                       le=MAX_BUFFER_BYTES)


class _Strict(BaseModel):
    """Unknown keys are errors, and values are not coerced: `true` and "24" are not numbers."""

    model_config = ConfigDict(extra="forbid", strict=True)


class PathCost(_Strict):
    """One data path: each transfer costs startup_cycles + charged_bytes / bytes_per_cycle."""

    startup_cycles: Cycles
    bytes_per_cycle: _bounded(float, "0.01 B/cycle (20 MB/s at 2 GHz) is slower than any DMA engine and 4096 "
                                     "B/cycle 16x the fastest documented path (256)", ge=0.01, le=4096)


class Intrinsic(_Strict):
    """One vector intrinsic: head + cycles_per_repeat x repeats (+ tail when the pipe drains)."""

    head_cycles: Cycles
    cycles_per_repeat: _bounded(float, "cycles per repeat: the documented ones are 0.9 to 7", ge=0, le=1e4)
    tail_cycles: Cycles
    elements_per_slope: _bounded(int, "the slope is charged per this many active elements (910B: 64)", ge=1,
                                 le=4096) | None = None


class Vector(_Strict):
    bytes_per_repeat: _bounded(int, "a repeat is whole 32-B blocks (910B: 8 blocks, 256 B)", ge=32, le=4096,
                               multiple_of=32)
    max_repeat: _bounded(int, "the repeat field of an instruction (910B: 8 bits, 255)", ge=1, le=65535)
    ctrl_cycles: Cycles
    barrier_cycles: Cycles
    count_mode_floor_cycles: Cycles
    intrinsics: dict[str, Intrinsic]


class Cube(_Strict):
    head_cycles: Cycles
    fractal_m: _bounded(int, "rows of a cube fractal (910B: 16)", ge=1, le=1024)
    fractal_n: _bounded(int, "columns of a cube fractal (910B: 16)", ge=1, le=1024)
    fractal_k_bytes: _bounded(int, "k0 = fractal_k_bytes / element size must be a whole number of elements of "
                                   "the widest cube operand, fp32 (910B: 32 B)", ge=4, le=4096, multiple_of=4)
    cycles_per_fractal: dict[Literal["bf16", "fp16", "fp32"],
                             _bounded(float, "cycles per fractal (910B: 1 or 2)", gt=0, le=1e3)]


class Scheduler(_Strict):
    orchestrator_submit_us: Micros
    scheduler_threads: _bounded(int, "AICPU scheduler threads (910B: 3)", ge=1, le=64)
    dispatch_cpu_us: Micros
    dispatch_latency_us: Micros
    completion_latency_us: Micros
    task_switch_us: Micros
    cross_core_sync_cycles: Cycles


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
    hbm_bytes_per_s: _bounded(float, "1 GB/s (one DDR channel) to 1 PB/s (910B: 1.6 TB/s)", ge=1e9, le=1e15)
    dma_block_bytes: _bounded(int, "the granule of a GM run (910B: 32 B)", ge=1, le=4096)
    dma: dict[str, PathCost]
    routes: dict[str, list[str]]
    vector: Vector
    cube: Cube
    scheduler: Scheduler
    reshape_cycles: Cycles

    def buffer_bytes(self, buf: Buffer) -> int:
        return {"UB": self.ub_bytes, "L1": self.l1_bytes, "L0A": self.l0a_bytes, "L0B": self.l0b_bytes,
                "L0C": self.l0c_bytes}[buf]

    @property
    def hbm_bytes_per_cycle(self) -> float:
        return self.hbm_bytes_per_s / self.clock_hz

    def us_to_cycles(self, us: float) -> float:
        return us * 1e-6 * self.clock_hz


def _describe(doc: YamlDoc, exc: ValidationError) -> ConfigError:
    models = {(): HardwareConfig, ("dma", "*"): PathCost, ("vector",): Vector, ("vector", "intrinsics", "*"): Intrinsic,
              ("cube",): Cube, ("scheduler",): Scheduler}
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
