"""Timing: hardware configs, cost rules, the pipe schedule of each kernel, shared HBM, the chip and its
runtime, and the critical path."""

from .chip import Chip, TaskRun, Timeline, simulate
from .critical_path import critical_path
from .hardware import (
    CONFIG_DIR,
    DEFAULT_CONFIG,
    HardwareConfig,
    config_label,
    config_sha256,
    load_config,
    resolve_config_path,
)
from .kernel import CapacityError, KernelSchedule, OpTiming, schedule_kernel

__all__ = ["CONFIG_DIR", "DEFAULT_CONFIG", "CapacityError", "Chip", "HardwareConfig", "KernelSchedule", "OpTiming",
           "TaskRun", "Timeline", "config_label", "config_sha256", "critical_path", "load_config",
           "resolve_config_path", "schedule_kernel", "simulate"]
