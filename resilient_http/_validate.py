"""Argument checks shared by every constructor: errors name the parameter, the value and
what is allowed."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from resilient_http._clock import LOOP_CLOCK, Clock

__all__ = [
    "duration",
    "optional_duration",
    "positive_int",
    "ratio",
    "callable_or_none",
    "flag",
    "number",
    "clock_or_default",
    "session_like",
]


def duration(name: str, value: Any, *, allow_zero: bool = False) -> float:
    """A duration in seconds from a ``float``/``int`` or a ``timedelta``; finite, > 0
    (>= 0 with ``allow_zero``)."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise TypeError(
            f"{name} must be a number of seconds or a timedelta, got {type(value).__name__} "
            f"{value!r}"
        )
    if math.isnan(seconds) or math.isinf(seconds):
        raise ValueError(f"{name} must be a finite number of seconds, got {value!r}")
    if seconds < 0 or (seconds == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound} seconds, got {value!r}")
    return seconds


def optional_duration(name: str, value: Any, *, allow_zero: bool = False) -> float | None:
    """Like :func:`duration`, but ``None`` passes through (meaning "no limit")."""
    return None if value is None else duration(name, value, allow_zero=allow_zero)


def positive_int(name: str, value: Any, *, minimum: int = 1) -> int:
    """An ``int`` (not a ``bool``) >= ``minimum``."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return value


def ratio(name: str, value: Any, *, low: float = 0.0, high: float = 1.0) -> float:
    """A finite number in ``[low, high]``."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    if not (low <= value <= high):  # also rejects NaN
        raise ValueError(f"{name} must be between {low} and {high}, got {value!r}")
    return float(value)


def callable_or_none(name: str, value: Any) -> Any:
    """``None`` or a callable."""
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be callable or None, got {type(value).__name__} {value!r}")
    return value


def flag(name: str, value: Any) -> bool:
    """A ``bool`` (not merely a truthy value)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {value!r}")
    return value


def clock_or_default(value: Any) -> Clock:
    """A :class:`~resilient_http.Clock`; ``None`` gives the event loop's (``LOOP_CLOCK``)."""
    if value is None:
        return LOOP_CLOCK
    if not isinstance(value, Clock):
        raise TypeError(f"clock must be a Clock (now, sleep, call_at), got {value!r}")
    return value


def number(name: str, value: Any, *, minimum: float = 0.0, inclusive: bool = True) -> float:
    """A finite ``int``/``float`` (not a ``bool``) >= ``minimum`` (> with ``inclusive=False``)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    if not math.isfinite(value) or value < minimum or (value == minimum and not inclusive):
        bound = f">= {minimum:g}" if inclusive else f"> {minimum:g}"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return float(value)


def session_like(value: Any) -> Any:
    """A ``ClientSession`` or a ``wrap()`` result: anything with a callable ``request``."""
    if not callable(getattr(value, "request", None)):
        raise TypeError(
            f"session must be an aiohttp.ClientSession or a wrap() result (something with "
            f".request()), got {type(value).__name__}"
        )
    return value
