"""Reliability suites (issue 5): options and fixtures shared by tests/reliability.

``--soak`` runs the same suites longer (more kill points, more Hypothesis examples,
every fault index at every mode); without it each suite is sized to keep the whole
directory within the CI budget (~8 minutes on 2 cores). Tests that only make sense as a
long run carry the ``soak`` marker and are skipped unless ``--soak`` is given.
"""

from __future__ import annotations

import pytest
from tools.conftest import cli, png_dir  # noqa: F401  (the CLI in-process and PNG photos, as in tests/tools)


def add_soak_option(parser: pytest.Parser) -> None:
    """Register ``--soak`` once (tests/conftest.py calls this too, see there)."""
    try:
        parser.addoption("--soak", action="store_true", default=False,
                         help="reliability suites: run the long soak versions (off by default)")
    except ValueError:
        pass  # already registered


def pytest_addoption(parser: pytest.Parser) -> None:
    add_soak_option(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "soak: long reliability run, only with --soak")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--soak", default=False):
        return
    skip = pytest.mark.skip(reason="long soak run: pass --soak")
    for item in items:
        if "soak" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def soak(request: pytest.FixtureRequest) -> bool:
    """True under ``--soak``: suites scale their iteration counts with it."""
    return bool(request.config.getoption("--soak", default=False))
