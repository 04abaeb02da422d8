"""Shared fixtures: the `hookflow` binary under test and the repository root."""

import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def hookflow():
    """Runs the hookflow binary named by $HOOKFLOW_BIN (scripts/test sets it)."""
    binary = os.environ.get("HOOKFLOW_BIN")
    if not binary or not os.path.exists(binary):
        pytest.fail("set HOOKFLOW_BIN to the built hookflow binary (scripts/test does)")

    def run(*args, input=None):
        return subprocess.run(
            [binary, *args], input=input, capture_output=True, timeout=30, cwd=ROOT
        )

    return run
