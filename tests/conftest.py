"""Shared test helpers: repository paths and a CLI runner."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

REPO = Path(__file__).resolve().parents[1]
PROGRAMS = REPO / "programs"


@pytest.fixture
def cli() -> CliRunner:
    return CliRunner()
