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

``enter`` may also return :data:`FORK`: the layer then runs the layers inside it (and the
handler) itself, as many times and as concurrently as it likes, through its ``fork(inner)``
method (``Hedge`` does). ``fork`` receives an :class:`Inner` and returns an awaitable
resolving to a ``Short`` (the outcome, which the layers outside see as the result) or
``None`` (go on inward as usual); raising stops the call. A forking layer gets no ``exit``
for that pass. Only the general engine looks for ``FORK``, so stacks without such a layer pay
nothing for it.

``call`` is a plain list: ``call[REQUEST]`` the aiohttp request (``None`` in decorator mode),
``call[HANDLER]`` the next handler or the decorated function, ``call[ARGS]``/``call[KWARGS]``
its arguments (decorator mode), ``call[TASK]`` the running task once a layer looked it up
(``None`` until then), and ``call[i]`` the layer's own per-call slot (``None`` at first).
A list, not an object with named fields, because it is built once per request on the fast
path: a list display costs ~35 ns, a slotted object with an ``__init__`` ~200 ns (a twentieth
of a whole ``standard()`` stack's own cost).

How a stack runs: :func:`_compile` generates, once per *shape* (the classes of the layers,
in order), the ``__call__`` of a layer class or of a ``Stack`` subclass made for that shape: a
coroutine function that calls each hook directly in a straight line (no loop, no per-layer
bookkeeping) as long as every hook answers ``None``; on the first other answer it hands over
to :func:`_drive`, the general engine, which continues from that point with the stack's
:class:`_Plan`. Per shape, not per object, so a layer made for every request compiles
nothing; as ``__call__``, so aiohttp calls it with no Python frame in between. (A layer
class that defines its own ``__call__`` keeps it; a lone layer calls its hooks as methods, so
``super().__call__`` from such a subclass runs the subclass's hooks.) Both paths follow the
rules above; the tests run every layer alone, fused in a ``Stack`` and through the general
engine.

A layer used alone in ``middlewares=`` runs through the same engine as inside a ``Stack``,
so it behaves exactly the same.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any, ClassVar, Final, TypeVar

from aiohttp import ClientRequest, ClientResponse, ClientSession
from aiohttp.client import _RequestContextManager
from aiohttp.client_middlewares import ClientHandlerType, ClientMiddlewareType

from resilient_http._order import check_order
from resilient_http._response import replay as _replay
from resilient_http._validate import show

__all__ = [
    "ARGS",
    "Call",
    "FORK",
    "HANDLER",
    "Inner",
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

class _Fork:
    __slots__ = ()

    def __repr__(self) -> str:
        return "FORK"


FORK: Any = _Fork()
"""Returned by ``enter`` to run the layers inside the current one through its ``fork``."""

Step = Short | Awaitable[Any] | None
"""What ``enter`` returns."""


class Layer:
    """Base class of every layer: a callable usable as an aiohttp client middleware.

    Subclasses override ``enter``/``exit`` (see the module docstring) and set the class
    flags below.
    """

    __slots__ = ("_plan",)
    _plan: _Plan

    requests_only: ClassVar[bool] = False
    """Whether the layer only makes sense on HTTP requests (not in the decorator)."""
    reads_body: bool = False
    """Whether the stack must read the response body inside the call (before the layers'
    ``exit`` hooks run), so that the body phase is covered by timeouts and retries. The body
    read stays readable through every aiohttp API (``read()``, ``text()``, ``json()`` and
    ``content``'s, see :func:`resilient_http._response.replay`). A body
    that arrived in full with the headers (the response's stream is at EOF) is left for the
    caller's ``read()``: nothing is left to wait for or to fail, and reading it twice costs
    two coroutines per request."""
    _fused: ClassVar[bool] = False
    """Set by :class:`Stack`, whose ``__call__`` depends on its layers, not on its class."""

    def enter(self, call: Call, i: int) -> Step:
        """Hook on the way in (see the module docstring)."""
        return None

    def exit(self, call: Call, i: int, result: Any, error: BaseException | None) -> Step:
        """Hook on the way out (see the module docstring)."""
        return None

    def fork(self, inner: Inner) -> Awaitable[Short | None]:
        """Run the layers inside this one after ``enter`` answered :data:`FORK` (see the
        module docstring)."""
        raise NotImplementedError(f"{type(self).__name__}.enter answered FORK without fork()")

    def __call__(  # replaced by generated code: see __init_subclass__
        self, request: ClientRequest, handler: ClientHandlerType
    ) -> Coroutine[Any, Any, ClientResponse]:
        """Run as an aiohttp client middleware."""
        raise NotImplementedError  # pragma: no cover

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # A class's own __call__ (or one it inherits from a user's class) is left alone.
        if not cls._fused and getattr(cls.__call__, "_generated", False):
            cls.__call__ = _generated(_hooks((cls,)), "self")  # type: ignore[method-assign]

    @property
    def layers(self) -> tuple[Layer, ...]:
        """The layers this object runs, outermost first (just itself for a single layer)."""
        return (self,)


class _Plan:
    """What the general engine needs of a stack: its layers, their shape, their hooks as bound
    methods (``None`` for a hook the layer does not override), and whether it reads the
    body."""

    __slots__ = ("layers", "shape", "enters", "exits", "n", "reads_body")

    def __init__(self, layers: tuple[Layer, ...]) -> None:
        self.layers = layers
        self.n = len(layers)
        self.shape = shape = _hooks(map(type, layers))
        self.enters = tuple(e and layer.enter for layer, (e, _) in zip(layers, shape, strict=True))
        self.exits = tuple(x and layer.exit for layer, (_, x) in zip(layers, shape, strict=True))
        self.reads_body = any(layer.reads_body for layer in layers)


class Inner:
    """The layers inside a forking layer, for one call: ``await inner()`` runs them once (one
    attempt: their ``enter`` hooks, the handler, the body read when the stack reads bodies,
    their ``exit`` hooks) with fresh per-call slots, in the running task, and returns the
    result or raises. Several attempts may run at once, each in its own task.

    Attributes:
        call: the forking layer's call (its request, handler and arguments are shared).
        outer: the layers outside the forking one, outermost first.
    """

    __slots__ = ("_plan", "call", "_k")

    def __init__(self, plan: _Plan, call: Call, k: int) -> None:
        self._plan = plan
        self.call = call
        self._k = k

    @property
    def outer(self) -> tuple[Layer, ...]:
        return self._plan.layers[: self._k - 1]

    def __call__(self) -> Coroutine[Any, Any, Any]:
        call = self.call
        fresh = [call[REQUEST], call[HANDLER], call[ARGS], call[KWARGS], None]
        fresh += [None] * self._plan.n
        return _drive(self._plan, fresh, self._k, False, None, None, None, self._k)


def _plan_of(layer: Layer) -> _Plan:
    """The plan of a layer or stack, made on the first call that leaves the fast path."""
    try:
        return layer._plan
    except AttributeError:
        plan = layer._plan = _Plan(layer.layers)
        return plan


Hooks = tuple[tuple[Any, Any], ...]
"""A stack's shape: per layer, its class's ``enter`` and ``exit`` (``None`` when not
overridden)."""


def _hooks(classes: Iterable[type[Layer]]) -> Hooks:
    return tuple(
        (
            None if cls.enter is Layer.enter else cls.enter,
            None if cls.exit is Layer.exit else cls.exit,
        )
        for cls in classes
    )


# Generated fast paths by shape and mode, so that a new layer or stack of a known shape (one
# made per request, say) costs no compilation (~0.4 ms). Shapes come from the program's own
# classes; the cap only guards against a program that makes classes on the fly.
_SHAPES: dict[tuple[str, Hooks], Callable[..., Any]] = {}
_MAX_SHAPES: Final = 4096


def _generated(hooks: Hooks, mode: str) -> Callable[..., Any]:
    key = (mode, hooks)
    run = _SHAPES.get(key)
    if run is None:
        if len(_SHAPES) >= _MAX_SHAPES:
            _SHAPES.clear()
        run = _SHAPES[key] = _compile(hooks, mode)
    return run


# Deeper stacks than this use the general engine from the start: the generated code nests one
# block per hook, and Python limits nesting to 100 levels.
_MAX_GENERATED: Final = 32

# Per mode: the signature, where the layers come from, and where the plan comes from.
_MODES: Final = {
    # a layer alone as a middleware: layer.__call__(request, handler)
    "self": ("self, request, handler", "self", "_plan_of(self)", "self.reads_body"),
    # a Stack as a middleware: stack.__call__(request, handler)
    "stack": ("self, request, handler", "self._layers", "self._plan", "self.reads_body"),
    # the decorator: run(plan, fn, args, kwargs)
    "call": ("plan, handler, args, kwargs", "plan.layers", "plan", "plan.reads_body"),
}


def _compile(hooks: Hooks, mode: str) -> Callable[..., Coroutine[Any, Any, Any]]:
    """Generate the fast path of a shape: every hook called directly, in a straight line, for
    as long as each one answers ``None`` (the common case); anything else is handed over to
    :func:`_drive` at that point. Generated (like ``dataclasses`` does) because a loop over
    the hooks costs ~40 ns per hook and request in bookkeeping alone, and the ``__call__`` of
    a layer class or stack shape, so that no Python frame stands between aiohttp and it."""
    params, layers, plan, reads = _MODES[mode]
    requests = mode != "call"
    n = len(hooks)
    head = "request, handler, None, None" if requests else "None, handler, args, kwargs"
    src = [f"async def __call__({params}):"]
    if requests:  # one attribute read when nothing is instrumented
        src += [
            "    if _TELEMETRY.run is not None:",
            f"        return await _TELEMETRY.run({plan}, request, handler)",
        ]
    src.append(f"    call = [{head}, None{', None' * n}]")
    if n > _MAX_GENERATED:
        src.append(f"    return await _drive({plan}, call, 0, False, None, None, None)")
        return _build(src)
    if n:
        targets = "L0" if mode == "self" else "".join(f"L{k}, " for k in range(n))
        src.append(f"    {targets} = {layers}")
    src += ["    step = result = None", "    i = 0", "    try:"]
    # Hooks are called as methods: a little cheaper in CPython 3.11 than a function kept in a
    # closure cell called with the layer (-0.1k instructions per layer), and a subclass that wraps
    # __call__ and calls super().__call__ still runs its own hooks. The shape (which hooks
    # each class overrides) decides which calls are written.
    enters = [k for k in range(n) if hooks[k][0] is not None]
    pad = _chain(src, "        ", ((k, f"L{k}.enter(call, {_FIRST + k})") for k in enters))
    src.append(f"{pad}i = {n}")
    if requests:
        src += [
            f"{pad}result = await handler(request)",
            f"{pad}if {reads} and not result.content.is_eof():  # else nothing is left to wait for",
            f"{pad}    _replay(result, await result.read())  # and content reads it again",
        ]
    else:
        src += [
            f"{pad}result = await handler(*args, **kwargs)",
            f"{pad}if {reads} and isinstance(result, ClientResponse):",
            f"{pad}    if not result.content.is_eof():",
            f"{pad}        _replay(result, await result.read())",
        ]
    src += [
        "    except BaseException as exc:",
        "        error = exc",
        "    else:",
        "        if step is not None:  # an enter hook answered: the general engine goes on",
        f"            return await _drive({plan}, call, i, False, step, None, None)",
    ]
    exits = [k for k in reversed(range(n)) if hooks[k][1] is not None]
    if not exits:
        src.append("        return result")
    else:
        src.append("        try:")
        calls = ((k, f"L{k}.exit(call, {_FIRST + k}, result, None)") for k in exits)
        pad = _chain(src, "            ", calls)
        src += [
            f"{pad}return result",
            "        except BaseException as exc:",
            "            error = exc",
            "            result = None  # the layer that raised dropped (and released) it",
            "        else:  # an exit hook answered: the general engine goes on",
            f"            return await _drive({plan}, call, i, True, step, result, None)",
        ]
    src += [
        "    if isinstance(result, ClientResponse):",
        "        result.release()  # the body read failed",
        f"    rest = _drive({plan}, call, i - 1, True, None, None, error)",
        "    del error  # no frame <-> traceback cycle",
        "    return await rest",
    ]
    return _build(src)


def _chain(src: list[str], pad: str, calls: Iterable[tuple[int, str]]) -> str:
    """Append hook calls, each nested in the previous one's ``step is None``; return the
    indentation inside the last one."""
    for k, call in calls:
        src += [f"{pad}i = {k}", f"{pad}step = {call}", f"{pad}if step is None:"]
        pad += "    "
    return pad


def _build(src: list[str]) -> Callable[..., Any]:
    scope: dict[str, Any] = {
        "_drive": _drive, "_plan_of": _plan_of, "_replay": _replay, "_TELEMETRY": TELEMETRY,
    }
    scope["ClientResponse"] = ClientResponse
    exec("\n".join(src), scope)  # our own generated source, see _compile
    run = scope["__call__"]
    run.__doc__ = "Run as an aiohttp client middleware."
    run._generated = True
    return run  # type: ignore[no-any-return]


class _Telemetry:
    """The engine's one telemetry switch (:mod:`resilient_http.otel` sets it): ``run``, when
    set, runs every HTTP call of every stack instead of the generated fast path, as
    ``await run(plan, request, handler)``, and calls :func:`run_plan` itself."""

    __slots__ = ("run",)

    def __init__(self) -> None:
        self.run: Callable[[_Plan, ClientRequest, ClientHandlerType], Awaitable[Any]] | None = None


TELEMETRY: Final = _Telemetry()


def run_plan(plan: _Plan, request: ClientRequest, handler: ClientHandlerType) -> Awaitable[Any]:
    """Run one HTTP call through a stack's plan with the general engine (the telemetry path:
    ``handler`` may be wrapped)."""
    call = [request, handler, None, None, None]
    call += [None] * plan.n
    return _drive(plan, call, 0, False, None, None, None)


async def _drive(
    plan: _Plan,
    call: Call,
    i: int,
    outward: bool,
    step: Any,
    result: Any,
    error: BaseException | None,
    low: int = 0,
) -> Any:
    """The general engine, the rules of the module docstring in a loop; runs a call from any
    point. Inward (``outward`` false): from layer ``i``, whose ``enter`` already answered
    ``step`` unless that is ``None``. Outward: from layer ``i``'s ``exit`` with the outcome
    ``result``/``error``; that exit already answered ``step`` unless that is ``None``. The
    way out stops after layer ``low`` (an :class:`Inner` attempt runs from its first layer
    back to it)."""
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
                            if step is FORK:
                                step = plan.layers[i].fork(Inner(plan, call, i + 1))
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
                            # read() releases the connection itself on failure
                            _replay(result, await result.read())
                    else:
                        result = await handler(*args, **(call[KWARGS] or {}))
                        if (
                            plan.reads_body
                            and isinstance(result, ClientResponse)
                            and not result.content.is_eof()
                        ):
                            _replay(result, await result.read())
            except BaseException as exc:
                error = exc
                step = None
                if isinstance(result, ClientResponse):
                    result.release()
                result = None
            j = i - 1
        # Outward: exit hooks of every layer entered, innermost first.
        while j >= low:
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


Layer.__call__ = _generated(_hooks((Layer,)), "self")  # type: ignore[method-assign]


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
                f"FieldMask, CircuitBreaker, Stack), got {type(layer).__name__} {show(layer)}; "
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

    __slots__ = ("_layers", "reads_body")
    _layers: tuple[Layer, ...]
    _fused = True

    def __new__(cls, *layers: Layer, **_: Any) -> Stack:
        plan = _Plan(_flatten(layers))
        check_order(plan.layers, plan.shape)  # a warning for an order that breaks a guarantee
        # The instance's class is a subclass of ``cls`` made once per shape of layers: its
        # __call__ is the shape's generated code, called by aiohttp with no frame between.
        self = object.__new__(_stack_class(cls, plan.shape))
        self._layers = plan.layers
        self.reads_body = plan.reads_body
        self._plan = plan
        return self

    def __init__(self, *layers: Layer) -> None:
        """See the class docstring (the work is done in ``__new__``)."""

    def __call__(
        self, request: ClientRequest, handler: ClientHandlerType
    ) -> Coroutine[Any, Any, ClientResponse]:
        """Run as an aiohttp client middleware."""
        # Reached only through super() from a subclass's own __call__: every stack's class
        # has its shape's generated __call__ otherwise.
        run = _generated(self._plan.shape, "stack")
        return run(self, request, handler)  # type: ignore[no-any-return]

    @property
    def layers(self) -> tuple[Layer, ...]:
        """The layers, outermost first."""
        return self._layers

    def __repr__(self) -> str:
        return f"Stack({', '.join(map(repr, self._layers))})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self).__base__, self._layers)


_STACK_CLASSES: dict[tuple[type[Stack], Hooks], type[Stack]] = {}


def _stack_class(base: type[Stack], hooks: Hooks) -> type[Stack]:
    key = (base, hooks)
    cls = _STACK_CLASSES.get(key)
    if cls is None:
        if len(_STACK_CLASSES) >= _MAX_SHAPES:
            _STACK_CLASSES.clear()
        namespace: dict[str, Any] = {
            "__slots__": (),
            "__module__": base.__module__,
            "__qualname__": base.__qualname__,
            "__doc__": base.__doc__,
        }
        if base.__call__ is Stack.__call__:  # a subclass's own __call__ stays first
            namespace["__call__"] = _generated(hooks, "stack")
        cls = _STACK_CLASSES[key] = type(base.__name__, (base,), namespace)
    return cls


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
    run = _generated(plan.shape, "call")

    def decorate(fn: F) -> F:
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(f"@resilient needs an async function, got {show(fn)}")

        @functools.wraps(fn)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            return await run(plan, fn, args, kwargs)

        wrapper.stack = stack  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate
