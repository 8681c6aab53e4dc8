"""Shared test helpers: repository paths, a CLI runner, and the hypothesis profiles: derandomised under CI
(`CI` set, as .ci/run does) so a fuzz failure there is reproducible, random locally to keep exploring."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import settings

REPO = Path(__file__).resolve().parents[1]
PROGRAMS = REPO / "programs"

settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("dev")
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture
def cli() -> CliRunner:
    return CliRunner()


# A runtime generation with almost no cost per task, for tests of mechanisms other than the runtime's (HBM
# sharing, overlap of independent kernels, figures of busy chips): the shipped generations are the device's,
# whose orchestrator submits one task per ~1.9 us.
FAST_RUNTIME = """\
  test-fast:
    description: tests only
    orchestrator_submit_us: 0.05
    scheduler_threads: 3
    dispatch_us: 0.2
    completion_us: 0.0
    pre_dispatch: false
    dispatch_latency_us: 0.4
    task_switch_us: 0.8
    finish_latency_us: 0.6
    exec_fixed_us: 0.0
"""


def fast_config(directory: Path, base: str = "ascend910b") -> Path:
    """A copy of a shipped config that runs the `test-fast` runtime generation."""
    text = (REPO / "configs" / f"{base}.yaml").read_text()
    head, sep, rest = text.partition("\nruntimes:\n")
    assert sep, "the config has a runtimes: section"
    head = "\n".join("runtime: test-fast" if line.startswith("runtime:") else line for line in head.split("\n"))
    path = directory / f"{base}-fast.yaml"
    path.write_text(head + sep + FAST_RUNTIME + rest)
    return path
