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
