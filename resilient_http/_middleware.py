"""The layer protocol, and the engine that runs any number of layers in one aiohttp middleware.

Why an engine and not a chain of middlewares: every aiohttp middleware level costs about a
microsecond per request (two coroutines and a closure per level), so six layers as six
middlewares cost six levels. Here a layer is two *synchronous* hooks, and one coroutine runs
all the hooks of a :class:`Stack` in a loop. Only what really has to wait awaits.

The protocol (for layer authors; users never call these):

``enter(call, i)``
    runs on the way in. Returns ``None`` to go on, a :class:`Short` to answer without going
    further (a cache hit), or an awaitable resolving to ``None`` or a ``Short`` (a real wait
    for a token, a cache miss waiting for another caller's request). Raising stops the call;
    the layers entered before it see the error in their ``exit``. A layer whose ``enter``
    raised or answered with a ``Short`` gets no ``exit`` for that pass.

``exit(call, i, result, error)``
    runs on the way out for every layer whose ``enter`` completed, innermost first, with the
    outcome so far (``error`` is ``None`` on success). Returns ``None`` to let the outcome
    pass, a ``Short`` to replace it with a value, :data:`REENTER` to run the layers inside it
    again (a retry), or an awaitable resolving to one of those (the backoff sleep). Raising
    replaces the error. A layer that drops a response it was given must release it.

``i`` is the layer's index in the stack: ``call.state[i]`` is its per-call scratch slot
(allocated only when a layer of the stack sets ``uses_state``).

A layer used alone in ``middlewares=`` runs through the same engine as inside a ``Stack``,
so it behaves exactly the same.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ClassVar, TypeVar

from aiohttp import ClientRequest, ClientResponse, ClientSession
from aiohttp.client import _RequestContextManager
from aiohttp.client_middlewares import ClientHandlerType, ClientMiddlewareType

__all__ = [
    "Call",
    "Layer",
    "Short",
    "REENTER",
    "Stack",
    "Wrapped",
    "wrap",
    "resilient",
]


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

Step = Short | Awaitable[Any] | None
"""What ``enter`` returns."""


class Call:
    """One logical call through a stack: a request (middleware and ``wrap()`` mode) or a
    function call (decorator mode)."""

    __slots__ = ("request", "handler", "args", "kwargs", "state")

    def __init__(
        self,
        request: ClientRequest | None,
        handler: Callable[..., Awaitable[Any]],
        args: tuple[Any, ...] | None,
        kwargs: dict[str, Any] | None,
        state: list[Any] | None,
    ) -> None:
        self.request = request
        """The aiohttp request, or ``None`` in decorator mode."""
        self.handler = handler
        self.args = args
        """Positional arguments of the decorated function (decorator mode only)."""
        self.kwargs = kwargs
        self.state = state


class Layer:
    """Base class of every layer: a callable usable as an aiohttp client middleware.

    Subclasses override ``enter``/``exit`` (see the module docstring) and set the class
    flags below.
    """

    __slots__ = ("_plan",)
    _plan: _Plan

    uses_state: ClassVar[bool] = False
    """Whether the layer keeps per-call state in ``call.state[i]``."""
    requests_only: ClassVar[bool] = False
    """Whether the layer only makes sense on HTTP requests (not in the decorator)."""
    reads_body: bool = False
    """Whether the stack must read the response body inside the call (before the layers'
    ``exit`` hooks run), so that the body phase is covered by timeouts and retries."""

    def enter(self, call: Call, i: int) -> Step:
        """Hook on the way in (see the module docstring)."""
        return None

    def exit(self, call: Call, i: int, result: Any, error: BaseException | None) -> Step:
        """Hook on the way out (see the module docstring)."""
        return None

    def __call__(
        self, request: ClientRequest, handler: ClientHandlerType
    ) -> Coroutine[Any, Any, ClientResponse]:
        """Run as an aiohttp client middleware."""
        try:
            plan = self._plan
        except AttributeError:
            plan = self._plan = _Plan((self,))
        return _run(plan, request, handler, None, None)

    @property
    def layers(self) -> tuple[Layer, ...]:
        """The layers this object runs, outermost first (just itself for a single layer)."""
        return (self,)


class _Plan:
    """A stack compiled for the engine: the hooks to call, with no-op hooks skipped."""

    __slots__ = ("layers", "enters", "exits", "n", "reads_body", "uses_state")

    def __init__(self, layers: tuple[Layer, ...]) -> None:
        self.layers = layers
        self.n = len(layers)
        self.enters = tuple(
            None if type(layer).enter is Layer.enter else layer.enter for layer in layers
        )
        self.exits = tuple(
            None if type(layer).exit is Layer.exit else layer.exit for layer in layers
        )
        self.reads_body = any(layer.reads_body for layer in layers)
        self.uses_state = any(layer.uses_state for layer in layers)


async def _run(
    plan: _Plan,
    request: ClientRequest | None,
    handler: Callable[..., Awaitable[Any]],
    args: tuple[Any, ...] | None,
    kwargs: dict[str, Any] | None,
) -> Any:
    """The engine: every layer's hooks in one coroutine (see the module docstring)."""
    n = plan.n
    enters = plan.enters
    exits = plan.exits
    call = Call(request, handler, args, kwargs, [None] * n if plan.uses_state else None)
    start = 0
    while True:
        result: Any = None
        error: BaseException | None = None
        i = start
        # Inward: enter hooks, then the handler.
        try:
            while i < n:
                enter = enters[i]
                if enter is not None:
                    step = enter(call, i)
                    if step is not None:
                        if type(step) is not Short:
                            step = await step  # type: ignore[misc]
                        if step is not None:
                            result = step.value
                            break
                i += 1
            else:
                if args is None:
                    result = await handler(request)
                    if plan.reads_body:
                        await result.read()  # releases the connection itself on failure
                else:
                    result = await handler(*args, **(kwargs or {}))
                    if plan.reads_body and isinstance(result, ClientResponse):
                        await result.read()
        except BaseException as exc:
            error = exc
            if isinstance(result, ClientResponse):
                result.release()
            result = None
        # Outward: exit hooks of every layer entered, innermost first.
        j = i - 1
        while j >= 0:
            leave = exits[j]
            if leave is not None:
                try:
                    step = leave(call, j, result, error)
                    if step is not None and type(step) is not Short and step is not REENTER:
                        step = await step  # type: ignore[misc]
                except BaseException as exc:
                    error = exc
                    result = None
                    step = None
                if step is not None:
                    if step is REENTER:
                        break
                    result = step.value
                    error = None
            j -= 1
        else:
            if error is None:
                return result
            try:
                raise error
            finally:  # no frame <-> traceback cycle left behind
                del error
        start = j + 1


def _flatten(layers: tuple[Any, ...]) -> tuple[Layer, ...]:
    out: list[Layer] = []
    for layer in layers:
        if isinstance(layer, Stack):
            out.extend(layer.layers)
        elif isinstance(layer, Layer):
            out.append(layer)
        else:
            raise TypeError(
                f"layers must be resilient_http layers (RateLimit, Retry, Timeout, Cache, "
                f"FieldMask, CircuitBreaker, Stack), got {type(layer).__name__} {layer!r}; "
                f"put plain aiohttp middlewares beside the stack in middlewares=(...)"
            )
    return tuple(out)


class Stack(Layer):
    """Layers fused into ONE aiohttp middleware, outermost first.

    ``Stack(a, b, c)`` behaves exactly like ``middlewares=(a, b, c)`` but runs all three in a
    single middleware level: each layer's before/after work runs inline, and only a layer that
    loops, waits or short-circuits costs an ``await``. Nested stacks are flattened.

    Example::

        stack = rh.Stack(rh.Timeout(30), rh.Retry(), rh.RateLimit(10), rh.Timeout(10))
        session = aiohttp.ClientSession(middlewares=(stack,))
    """

    __slots__ = ("_layers",)

    def __init__(self, *layers: Layer) -> None:
        self._layers = _flatten(layers)
        self._plan = _Plan(self._layers)

    @property
    def layers(self) -> tuple[Layer, ...]:
        """The layers, outermost first."""
        return self._layers

    def __repr__(self) -> str:
        return f"Stack({', '.join(map(repr, self._layers))})"


class Wrapped:
    """A session with layers around it, as returned by :func:`wrap`.

    Offers ``ClientSession``'s request API: ``request(method, url, **kw)`` and ``get``,
    ``post``, ``put``, ``patch``, ``delete``, ``head``, ``options``, each usable as
    ``async with api.get(url) as resp`` or ``resp = await api.get(url)``. The layers run
    outside the session's own middlewares. A ``middlewares=`` argument on one call replaces
    the session's middlewares for that call (as in aiohttp), the layers still run around it.
    The session is not owned: closing it stays the caller's job.
    """

    __slots__ = ("session", "stack", "_middlewares")

    def __init__(self, session: ClientSession, stack: Stack) -> None:
        self.session = session
        self.stack = stack
        # aiohttp has no public accessor for a session's middlewares.
        own: tuple[ClientMiddlewareType, ...] = tuple(getattr(session, "_middlewares", ()))
        self._middlewares: tuple[ClientMiddlewareType, ...] = (stack, *own)

    def request(self, method: str, url: Any, **kwargs: Any) -> _RequestContextManager:
        """Like ``ClientSession.request``, through the layers."""
        extra = kwargs.pop("middlewares", None)
        middlewares = self._middlewares if extra is None else (self.stack, *extra)
        return self.session.request(method, url, middlewares=middlewares, **kwargs)

    def get(self, url: Any, **kwargs: Any) -> _RequestContextManager:
        """``GET`` through the layers."""
        return self.request("GET", url, **kwargs)

    def post(self, url: Any, **kwargs: Any) -> _RequestContextManager:
        """``POST`` through the layers."""
        return self.request("POST", url, **kwargs)

    def put(self, url: Any, **kwargs: Any) -> _RequestContextManager:
        """``PUT`` through the layers."""
        return self.request("PUT", url, **kwargs)

    def patch(self, url: Any, **kwargs: Any) -> _RequestContextManager:
        """``PATCH`` through the layers."""
        return self.request("PATCH", url, **kwargs)

    def delete(self, url: Any, **kwargs: Any) -> _RequestContextManager:
        """``DELETE`` through the layers."""
        return self.request("DELETE", url, **kwargs)

    def head(self, url: Any, **kwargs: Any) -> _RequestContextManager:
        """``HEAD`` through the layers (redirects not followed, as in aiohttp)."""
        kwargs.setdefault("allow_redirects", False)
        return self.request("HEAD", url, **kwargs)

    def options(self, url: Any, **kwargs: Any) -> _RequestContextManager:
        """``OPTIONS`` through the layers."""
        return self.request("OPTIONS", url, **kwargs)

    def __repr__(self) -> str:
        return f"wrap({self.session!r}, {self.stack!r})"


def wrap(session: ClientSession, *layers: Layer) -> Wrapped:
    """Put layers around a session you already have, without rebuilding it.

    Returns an object with ``ClientSession``'s request methods; the layers run outside the
    session's own middlewares::

        api = rh.wrap(session, rh.Retry(), rh.RateLimit(5))
        async with api.get(url) as resp:
            data = await resp.json()
    """
    if not isinstance(session, ClientSession):
        raise TypeError(f"session must be an aiohttp.ClientSession, got {type(session).__name__}")
    if not layers:
        raise ValueError("wrap() needs at least one layer")
    return Wrapped(session, Stack(*layers))


F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def resilient(*layers: Layer) -> Callable[[F], F]:
    """Decorate an async function so the layers wrap each whole call.

    The layers see the call instead of a request: exceptions raised by the function (an
    ``aiohttp.ClientResponseError`` from ``raise_for_status()``, a connection error) are what
    ``Retry`` classifies, ``RateLimit`` limits calls, ``Timeout`` bounds the whole call and
    ``Cache`` memoizes the result by the arguments. Request-only layers (``FieldMask``) raise
    ``TypeError`` here::

        @rh.resilient(rh.Retry(attempts=3), rh.RateLimit(2), rh.Timeout(5))
        async def fetch_user(session, user_id):
            async with session.get(f"/users/{user_id}") as resp:
                resp.raise_for_status()
                return await resp.json()

    The decorated function keeps its name and signature; ``fn.stack`` is the ``Stack``.
    """
    stack = Stack(*layers)
    if not stack.layers:
        raise ValueError("resilient() needs at least one layer")
    for layer in stack.layers:
        if layer.requests_only:
            raise TypeError(
                f"{type(layer).__name__} only works on HTTP requests (session middlewares or "
                f"wrap()), not on a decorated function"
            )
    plan = _Plan(stack.layers)

    def decorate(fn: F) -> F:
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(f"@resilient needs an async function, got {fn!r}")

        @functools.wraps(fn)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            return await _run(plan, None, fn, args, kwargs)

        wrapper.stack = stack  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate
