"""Pickling and copying a layer: the copy has the same configuration and none of the state.

A layer keeps what its constructor was given (``self._config = config_of(locals())`` as the
constructor's first line) and uses :func:`fresh_reduce` as its ``__reduce__``: ``pickle``,
``copy.copy`` and ``copy.deepcopy`` then rebuild it by calling the constructor again. Cache
entries, circuits, token buckets, calls in flight, waiters, timers and event-loop bindings
are never copied: they belong to the process and loop that made them (a rate-limit permit
copied into another process would never be given back)."""

from __future__ import annotations

from typing import Any

__all__ = ["config_of", "fresh_reduce", "rebuild"]


def config_of(arguments: dict[str, Any]) -> dict[str, Any]:
    """A constructor's arguments from its ``locals()`` (taken before it changes any)."""
    return {name: value for name, value in arguments.items() if name not in ("self", "__class__")}


def rebuild(cls: type, config: dict[str, Any]) -> Any:
    """``cls(**config)``: what unpickling (or copying) a layer calls."""
    return cls(**config)


def fresh_reduce(self: Any) -> tuple[Any, tuple[type, dict[str, Any]]]:
    """``__reduce__`` for an object holding its constructor's arguments in ``_config``."""
    return (rebuild, (type(self), self._config))
