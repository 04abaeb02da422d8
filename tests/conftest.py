"""Shared fixtures: the `hookflow` binary under test and the repository root;
every test's time bound."""

import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent

# Every test ends within this (pytest-timeout: its setup, a module's first
# build of the Lambda functions under `cargo lambda watch` included), so a
# hang fails its test with a traceback instead of CI's 90-minute limit.
TEST_TIMEOUT_S = 900


def pytest_collection_modifyitems(items):
    for item in items:
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(TEST_TIMEOUT_S))


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
