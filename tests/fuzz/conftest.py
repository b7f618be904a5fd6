"""The fuzz harnesses run longer than the suite's 60 s per-test limit allows on a busy
machine (each test is hundreds of examples, or thousands under ``make fuzz``): they get a
limit of their own, still finite so that a hang fails."""

from __future__ import annotations

from pathlib import Path

import pytest
from _profiles import LONG

_HERE = Path(__file__).parent
_LIMIT = 1800 if LONG else 300


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.timeout(_LIMIT))
