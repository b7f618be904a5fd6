"""The layer protocol, and the engine that runs any number of layers in one aiohttp middleware.

Why an engine and not a chain of middlewares: every aiohttp middleware level costs about a
microsecond per request (two coroutines and a closure per level), so six layers as six
middlewares cost six levels. Here a layer is two *synchronous* hooks, and one coroutine runs
all the hooks of a :class:`Stack`. Only what really has to wait awaits.

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

``call`` is a plain list: ``call[REQUEST]`` the aiohttp request (``None`` in decorator mode),
``call[HANDLER]`` the next handler or the decorated function, ``call[ARGS]``/``call[KWARGS]``
its arguments (decorator mode), ``call[TASK]`` the running task once a layer looked it up
(``None`` until then), and ``call[i]`` the layer's own per-call slot (``None`` at first).
A list, not an object with named fields, because it is built once per request on the fast
path: a list display costs ~35 ns, a slotted object with an ``__init__`` ~200 ns (a twentieth
of a whole ``standard()`` stack's own cost).

How a stack runs: :class:`_Plan` generates, once per stack, a coroutine function that calls
each hook directly in a straight line (no loop, no per-layer bookkeeping) as long as every
hook answers ``None``; on the first other answer it hands over to :func:`_drive`, the general
engine, which continues from that point. Both follow the rules above; the tests run every
layer alone, fused in a ``Stack`` and through the general engine.

A layer used alone in ``middlewares=`` runs through the same engine as inside a ``Stack``,
so it behaves exactly the same.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ClassVar, Final, TypeVar

from aiohttp import ClientRequest, ClientResponse, ClientSession
from aiohttp.client import _RequestContextManager
from aiohttp.client_middlewares import ClientHandlerType, ClientMiddlewareType

__all__ = [
    "ARGS",
    "Call",
    "HANDLER",
    "KWARGS",
    "Layer",
    "REENTER",
    "REQUEST",
    "Short",
    "Stack",
    "TASK",
    "Wrapped",
    "resilient",
    "wrap",
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

Step = Short | Awaitable[Any] | None
"""What ``enter`` returns."""


class Layer:
    """Base class of every layer: a callable usable as an aiohttp client middleware.

    Subclasses override ``enter``/``exit`` (see the module docstring) and set the class
    flags below.
    """

    __slots__ = ("_run",)
    _run: Callable[[ClientRequest, ClientHandlerType], Coroutine[Any, Any, ClientResponse]]

    requests_only: ClassVar[bool] = False
    """Whether the layer only makes sense on HTTP requests (not in the decorator)."""
    reads_body: bool = False
    """Whether the stack must read the response body inside the call (before the layers'
    ``exit`` hooks run), so that the body phase is covered by timeouts and retries. A body
    that arrived in full with the headers (the response's stream is at EOF) is left for the
    caller's ``read()``: nothing is left to wait for or to fail, and reading it twice costs
    two coroutines per request."""

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
            run = self._run
        except AttributeError:
            run = self._run = _Plan((self,)).run
        return run(request, handler)

    @property
    def layers(self) -> tuple[Layer, ...]:
        """The layers this object runs, outermost first (just itself for a single layer)."""
        return (self,)


class _Plan:
    """A stack compiled for the engine: the hooks to call (no-op hooks skipped), and the
    generated fast paths ``run(request, handler)`` and ``call(fn, args, kwargs)``."""

    __slots__ = ("layers", "enters", "exits", "n", "reads_body", "run", "call")

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
        self.run = _compile(self, requests=True)
        self.call = _compile(self, requests=False)


# Deeper stacks than this use the general engine from the start: the generated code nests one
# block per hook, and Python limits nesting to 100 levels.
_MAX_GENERATED: Final = 32


def _compile(plan: _Plan, *, requests: bool) -> Callable[..., Coroutine[Any, Any, Any]]:
    """Generate the fast path of a plan: every hook called directly, in a straight line, for
    as long as each one answers ``None`` (the common case); anything else is handed over to
    :func:`_drive` at that point. Generated (like ``dataclasses`` does) because a loop over
    the hooks costs ~40 ns per hook and request in bookkeeping alone."""
    n = plan.n
    params = "request, handler" if requests else "handler, args, kwargs"
    head = "request, handler, None, None" if requests else "None, handler, args, kwargs"
    src = [
        f"async def run({params}):",
        f"    call = [{head}, None{', None' * n}]",
    ]
    if n > _MAX_GENERATED:
        src.append("    return await _drive(plan, call, 0, False, None, None, None)")
        return _build(plan, src, {})
    env: dict[str, Any] = {}
    src += ["    step = result = None", "    i = 0", "    try:"]
    pad = "        "
    for k, layer in enumerate(plan.layers):
        if plan.enters[k] is None:
            continue
        env[f"L{k}"], env[f"E{k}"] = layer, type(layer).enter
        src += [
            f"{pad}i = {k}",
            f"{pad}step = E{k}(L{k}, call, {_FIRST + k})",
            f"{pad}if step is None:",
        ]
        pad += "    "
    src.append(f"{pad}i = {n}")
    if requests:
        src.append(f"{pad}result = await handler(request)")
        if plan.reads_body:
            src += [
                f"{pad}if not result.content.is_eof():  # else nothing is left to wait for",
                f"{pad}    await result.read()",
            ]
    else:
        src.append(f"{pad}result = await handler(*args, **kwargs)")
        if plan.reads_body:
            src += [
                f"{pad}if isinstance(result, ClientResponse) and not result.content.is_eof():",
                f"{pad}    await result.read()",
            ]
    src += [
        "    except BaseException as exc:",
        "        error = exc",
        "    else:",
        "        if step is not None:  # an enter hook answered: the general engine goes on",
        "            return await _drive(plan, call, i, False, step, None, None)",
    ]
    exits = [k for k in reversed(range(n)) if plan.exits[k] is not None]
    if not exits:
        src.append("        return result")
    else:
        src.append("        try:")
        pad = "            "
        for k in exits:
            layer = plan.layers[k]
            env[f"L{k}"], env[f"X{k}"] = layer, type(layer).exit
            src += [
                f"{pad}i = {k}",
                f"{pad}step = X{k}(L{k}, call, {_FIRST + k}, result, None)",
                f"{pad}if step is None:",
            ]
            pad += "    "
        src += [
            f"{pad}return result",
            "        except BaseException as exc:",
            "            error = exc",
            "            result = None  # the layer that raised dropped (and released) it",
            "        else:  # an exit hook answered: the general engine goes on",
            "            return await _drive(plan, call, i, True, step, result, None)",
        ]
    src += [
        "    if isinstance(result, ClientResponse):",
        "        result.release()  # the body read failed",
        "    rest = _drive(plan, call, i - 1, True, None, None, error)",
        "    del error  # no frame <-> traceback cycle",
        "    return await rest",
    ]
    return _build(plan, src, env)


def _build(plan: _Plan, src: list[str], env: dict[str, Any]) -> Callable[..., Any]:
    header = f"def factory(plan, _drive, ClientResponse, {', '.join(env)}):"
    code = "\n".join([header, *("    " + line for line in src), "    return run"])
    scope: dict[str, Any] = {}
    exec(code, scope)  # our own generated source, see _compile
    return scope["factory"](plan, _drive, ClientResponse, *env.values())  # type: ignore[no-any-return]


async def _drive(
    plan: _Plan,
    call: Call,
    i: int,
    outward: bool,
    step: Any,
    result: Any,
    error: BaseException | None,
) -> Any:
    """The general engine, the rules of the module docstring in a loop; runs a call from any
    point. Inward (``outward`` false): from layer ``i``, whose ``enter`` already answered
    ``step`` unless that is ``None``. Outward: from layer ``i``'s ``exit`` with the outcome
    ``result``/``error``; that exit already answered ``step`` unless that is ``None``."""
    n = plan.n
    enters = plan.enters
    exits = plan.exits
    request = call[REQUEST]
    handler = call[HANDLER]
    args = call[ARGS]
    while True:
        if outward:
            j = i
            outward = False
        else:
            # Inward: enter hooks, then the handler.
            try:
                while i < n:
                    if step is None:
                        enter = enters[i]
                        if enter is not None:
                            step = enter(call, _FIRST + i)
                    if step is not None:
                        if type(step) is not Short:
                            step = await step
                        if step is not None:
                            result = step.value
                            step = None
                            break
                    i += 1
                else:
                    if args is None:
                        result = await handler(request)
                        if plan.reads_body and not result.content.is_eof():
                            await result.read()  # releases the connection itself on failure
                    else:
                        result = await handler(*args, **(call[KWARGS] or {}))
                        if (
                            plan.reads_body
                            and isinstance(result, ClientResponse)
                            and not result.content.is_eof()
                        ):
                            await result.read()
            except BaseException as exc:
                error = exc
                step = None
                if isinstance(result, ClientResponse):
                    result.release()
                result = None
            j = i - 1
        # Outward: exit hooks of every layer entered, innermost first.
        while j >= 0:
            try:
                if step is None:
                    leave = exits[j]
                    if leave is not None:
                        step = leave(call, _FIRST + j, result, error)
                if step is not None and type(step) is not Short and step is not REENTER:
                    step = await step
            except BaseException as exc:
                error = exc
                result = None
                step = None
            if step is not None:
                if step is REENTER:
                    step = None
                    break
                result = step.value
                error = None
                step = None
            j -= 1
        else:
            if error is None:
                return result
            # A task that ends with this error holds it; its traceback holds our frames, which
            # hold the call: drop the call's reference to the task so no cycle is left behind.
            call[TASK] = None
            try:
                raise error
            finally:  # no frame <-> traceback cycle left behind
                del error
        i = j + 1
        result = error = None


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
        self._run = _Plan(self._layers).run

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
    run = _Plan(stack.layers).call

    def decorate(fn: F) -> F:
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(f"@resilient needs an async function, got {fn!r}")

        @functools.wraps(fn)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            return await run(fn, args, kwargs)

        wrapper.stack = stack  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate
