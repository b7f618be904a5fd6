"""``priority``: which waiters of a rate limit go first, set per task context."""

from __future__ import annotations

from contextvars import ContextVar, Token

from resilient_http._validate import show
from resilient_http._waitqueue import BACKGROUND, NORMAL, URGENT

__all__ = ["priority", "PRIORITY", "LEVEL_NAMES"]

PRIORITY: ContextVar[int] = ContextVar("resilient_http_priority", default=NORMAL)
_LEVELS = {"urgent": URGENT, "normal": NORMAL, "background": BACKGROUND}
LEVEL_NAMES = {v: k for k, v in _LEVELS.items()}


class priority:
    """Mark the requests (or decorated calls) made inside a ``with`` block as ``"urgent"``,
    ``"normal"`` (the default) or ``"background"``::

        with rh.priority("background"):
            await session.get(url)          # waits behind urgent and normal requests

    It only matters when a request has to wait for a token: urgent waiters go first and
    background work fills the gaps, FIFO within a class; a class with waiters is never passed
    over more than four times in a row, so background work is never starved. The setting
    follows the task's context (``contextvars``), so it also covers tasks created inside the
    block, and it works the same for ``@resilient`` functions.
    """

    __slots__ = ("level", "_token")

    def __init__(self, level: str) -> None:
        if not isinstance(level, str) or level not in _LEVELS:
            raise ValueError(
                f"priority level must be 'urgent', 'normal' or 'background', got {show(level)}"
            )
        self.level = level
        self._token: Token[int] | None = None

    def __enter__(self) -> priority:
        self._token = PRIORITY.set(_LEVELS[self.level])
        return self

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            PRIORITY.reset(self._token)
            self._token = None

    def __repr__(self) -> str:
        return f"priority({self.level!r})"
