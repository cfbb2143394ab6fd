"""Suite-wide settings: the per-test timeout of the long (``slow``) tests.

``pyproject.toml`` gives every test 600 s (pytest-timeout), so a hung simulation fails instead
of hanging the run; the ``slow`` sweeps (``make sim``, ``make synth``) get an hour unless the
test sets its own ``@pytest.mark.timeout``.
"""
import pytest

SLOW_TIMEOUT_S = 3600


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(SLOW_TIMEOUT_S))
