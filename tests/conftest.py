"""Shared fixtures of the test suite; shared functions and references live in tests/helpers/.

Test modules sit in folders that mirror the package (tests/core, tests/training, ...) and import
shared code from `helpers` (pytest puts tests/ on sys.path: `pythonpath` in pyproject.toml),
never from each other.
"""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def one_thread():
    """torch on one thread for the test (training jobs run with one), restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
