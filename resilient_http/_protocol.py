"""The vocabulary of the layer protocol (described in :mod:`resilient_http._middleware`): the
per-call list's layout, and the answers a hook may give besides ``None``."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Final

__all__ = [
    "ARGS", "Call", "FORK", "HANDLER", "Hooks", "KWARGS", "REENTER", "REQUEST", "Short", "Step",
    "TASK", "_FIRST",
]

Call = list[Any]
"""One logical call through a stack (see the module docstring for its layout)."""
REQUEST: Final = 0
HANDLER: Final = 1
ARGS: Final = 2
KWARGS: Final = 3
TASK: Final = 4
_FIRST: Final = 5
"""``call[_FIRST + k]`` is the slot of the stack's k-th layer; hooks receive that index."""


class Short:
    """An answer that ends a pass early: a cache hit on the way in, a replacement on the way
    out."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


class _Reenter:
    __slots__ = ()

    def __repr__(self) -> str:
        return "REENTER"


REENTER: Any = _Reenter()
"""Returned by ``exit`` to run the layers inside the current one again (one more attempt)."""


class _Fork:
    __slots__ = ()

    def __repr__(self) -> str:
        return "FORK"


FORK: Any = _Fork()
"""Returned by ``enter`` to run the layers inside the current one through its ``fork``."""

Step = Short | Awaitable[Any] | None
"""What ``enter`` returns."""

Hooks = tuple[tuple[Any, Any], ...]
"""A stack's shape: per layer, its class's ``enter`` and ``exit`` (``None`` when not
overridden)."""
