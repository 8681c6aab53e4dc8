"""npusim: a cycle-approximate simulator of an Ascend-class NPU running tile-op decode programs."""

__version__ = "0.1.0"
