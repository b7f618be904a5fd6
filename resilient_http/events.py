"""Named events every layer emits, to stdlib ``logging`` and to optional hooks.

Each decision a layer makes (a retry scheduled, a token waited for, a breaker opened, a cache
hit) becomes an :class:`Event`. Events go to the ``resilient_http`` logger at DEBUG (INFO for
the ones an operator cares about: gave up, breaker state changes, rate adapted) and to the
hooks passed as a layer's ``on_event=``, and to the process-wide :data:`SINKS`
(:func:`resilient_http.otel.instrument` adds one). Nothing is built when nobody listens.

URLs in events are redacted (:mod:`resilient_http._redact`, by the rule of
:mod:`resilient_http.credentials`): user info, the values of credential query parameters
(``api_key``, ``token``, ``X-Amz-Signature`` …) and fragments never reach a log line or a hook.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from yarl import URL

from resilient_http._middleware import HANDLER, REQUEST, Call
from resilient_http._redact import REDACTED, redact_headers, redact_url
from resilient_http._validate import collection, show

__all__ = [
    "Event",
    "EventHook",
    "Emitter",
    "logger",
    "DEBUG_LOG",
    "REDACTED",
    "redact_url",
    "redact_headers",
    "qualname",
    "SINKS",
    "add_sink",
    "remove_sink",
]

logger = logging.getLogger("resilient_http")
"""The library's logger. DEBUG shows every event; INFO the ones an operator acts on."""


SINKS: list[EventHook] = []
"""Process-wide hooks that receive every layer's events (telemetry: :mod:`resilient_http.otel`),
beside each layer's own ``on_event`` hooks. Change it with :func:`add_sink`/:func:`remove_sink`
only: they keep :data:`DEBUG_LOG` in step."""


class _DebugLog:
    """Whether :data:`logger`'s levels let DEBUG records through, or a process-wide sink
    (:data:`SINKS`) listens: ``DEBUG_LOG.on``.

    A fast path reads this attribute instead of calling ``logger.isEnabledFor(DEBUG)``
    (~100 ns a call). It is recomputed on logging's own hook: every level change
    (``Logger.setLevel`` on any logger, ``logging.disable``, hence ``basicConfig``,
    ``dictConfig`` and ``fileConfig``) ends in ``Logger.manager._clear_cache()``, the call
    that empties ``isEnabledFor``'s own cache, and :func:`_follow` wraps it. A *disabled*
    logger (``logger.disabled``, which ``dictConfig`` sets without that hook) still reads as
    on: the ``emit`` that follows asks ``isEnabledFor`` and drops the event. So ``on`` may be
    true for nothing, never false for a listener.
    """

    __slots__ = ("on",)

    def __init__(self) -> None:
        self.on = True
        self.update()

    def update(self) -> None:
        """Recompute :attr:`on` from the levels (what ``isEnabledFor`` does, minus
        ``disabled``)."""
        self.on = bool(SINKS) or (
            logger.manager.disable < logging.DEBUG and logger.getEffectiveLevel() <= logging.DEBUG
        )


DEBUG_LOG = _DebugLog()
"""``DEBUG_LOG.on``: would a DEBUG event reach :data:`logger`, as far as levels go (see
:class:`_DebugLog`). Hooks are separate: check ``emitter.hooks or DEBUG_LOG.on``."""


def _follow(manager: logging.Manager) -> None:
    """Recompute :data:`DEBUG_LOG` whenever logging clears its level caches."""
    clear = getattr(manager, "_clear_cache", None)
    if clear is None:  # a logging without the hook: stay on, every emit asks isEnabledFor
        DEBUG_LOG.on = True
        return

    def clear_cache() -> None:
        clear()
        DEBUG_LOG.update()

    manager._clear_cache = clear_cache  # type: ignore[attr-defined]


_follow(logger.manager)

@dataclass(frozen=True, slots=True)
class Event:
    """One decision of one layer.

    Attributes:
        name: dotted event name, e.g. ``"retry.scheduled"``, ``"cache.hit"``.
        layer: the layer's class name.
        method: the request method, or ``None`` in decorator mode.
        url: the redacted request URL, or the function's qualified name in decorator mode.
        detail: event-specific values (delays in seconds, statuses, reasons).
    """

    name: str
    layer: str
    method: str | None
    url: str | None
    detail: Mapping[str, Any] = field(default_factory=dict)


EventHook = Callable[[Event], None]
"""A callable that receives every :class:`Event` of a layer. It must not block."""


def add_sink(sink: EventHook) -> None:
    """Send every layer's events to ``sink`` too (process-wide, until :func:`remove_sink`)."""
    if not callable(sink):
        raise TypeError(f"sink must be callable, got {type(sink).__name__} {sink!r}")
    SINKS.append(sink)
    DEBUG_LOG.update()


def remove_sink(sink: EventHook) -> None:
    """Undo :func:`add_sink` (a sink not added is ignored)."""
    if sink in SINKS:
        SINKS.remove(sink)
    DEBUG_LOG.update()


class Emitter:
    """Sends a layer's events to the logger and to its hooks. Cheap when nobody listens."""

    __slots__ = ("layer", "hooks")

    def __init__(self, layer: str, hooks: EventHook | Sequence[EventHook] | None) -> None:
        if hooks is None:
            self.hooks: tuple[EventHook, ...] = ()
        elif callable(hooks):
            self.hooks = (hooks,)
        else:
            self.hooks = collection("on_event", hooks, "callables (or one callable)")
            for h in self.hooks:
                if not callable(h):
                    raise TypeError(
                        f"on_event must be a callable or a sequence of callables, got {show(h)}"
                    )
        self.layer = layer

    def enabled(self, level: int = logging.DEBUG) -> bool:
        """Whether an event at ``level`` would reach anyone (check before building details)."""
        return bool(self.hooks or SINKS) or logger.isEnabledFor(level)

    def emit(
        self,
        name: str,
        method: str | None,
        url: URL | str | None,
        level: int = logging.DEBUG,
        **detail: Any,
    ) -> None:
        """Build and send one event, if anyone listens at ``level``."""
        if not self.hooks and not SINKS and not logger.isEnabledFor(level):
            return
        shown = redact_url(url) if isinstance(url, URL) else url
        event = Event(name, self.layer, method, shown, detail)
        if logger.isEnabledFor(level):
            extra = " ".join(f"{k}={v!r}" for k, v in detail.items())
            logger.log(level, "%s %s %s %s", name, method or "", shown or "", extra)
        for hook in (*self.hooks, *SINKS) if SINKS else self.hooks:
            try:
                hook(event)
            except Exception:  # a broken hook must never break a request
                logger.exception("event hook %r failed on %s", hook, name)

    def emit_call(
        self, name: str, call: Call | None, level: int = logging.DEBUG, **detail: Any
    ) -> None:
        """:meth:`emit` about one call through the layer: its request's method and URL, or in
        decorator mode the decorated function's :func:`qualname` (``call=None``: neither)."""
        if not self.hooks and not SINKS and not logger.isEnabledFor(level):
            return
        if call is None:
            self.emit(name, None, None, level, **detail)
        elif call[REQUEST] is not None:
            self.emit(name, call[REQUEST].method, call[REQUEST].url, level, **detail)
        else:
            self.emit(name, None, qualname(call[HANDLER]), level, **detail)


def qualname(fn: Any) -> str:
    """How events and messages name a decorated function: its ``__qualname__``."""
    return str(getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn))
