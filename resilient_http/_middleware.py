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

How a stack runs (:mod:`resilient_http._codegen`, :mod:`resilient_http._engine`):
:func:`_compile` generates, once per *shape* (the classes of the layers,
in order), the ``__call__`` of a layer class or of a ``Stack`` subclass made for that shape: a
coroutine function that calls each hook directly in a straight line (no loop, no per-layer
bookkeeping) as long as every hook answers ``None``; on the first other answer it hands over
to :func:`_drive`, the general engine, which continues from that point with the stack's
:class:`_Plan` (a ``Stack``'s class is made per shape and body flag, so that its code knows
whether to read the body without looking). Per shape, not per object, so a layer made for
every request compiles nothing; as ``__call__``, so aiohttp calls it with no Python frame in
between. (A layer class that defines its own ``__call__`` keeps it; a lone layer calls its
hooks as methods, so ``super().__call__`` from such a subclass runs the subclass's hooks.)
Both paths follow the rules above; the tests run every layer alone, fused in a ``Stack`` and
through the general engine.

A layer used alone in ``middlewares=`` runs through the same engine as inside a ``Stack``,
so it behaves exactly the same.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, ClassVar, Final

from aiohttp import ClientRequest, ClientResponse
from aiohttp.client_middlewares import ClientHandlerType

from resilient_http import _protocol
from resilient_http._codegen import _compile
from resilient_http._engine import TELEMETRY, Hooked, Inner, _drive, _hooks, _Plan, run_plan
from resilient_http._order import check_order
from resilient_http._protocol import *  # noqa: F403 (the protocol's names, re-exported)
from resilient_http._protocol import Hooks
from resilient_http._validate import show

__all__ = [
    "Inner",
    "Layer",
    "Stack",
    "Wrapped",
    "resilient",
    "wrap",
    # the engine's own names, importable from here too
    "TELEMETRY",
    "_drive",
    "_Plan",
    "run_plan",
]
__all__ += _protocol.__all__  # ARGS, Call, FORK, HANDLER, ...: the protocol's names


class Layer(Hooked):
    """Base class of every layer: a callable usable as an aiohttp client middleware.

    Subclasses override ``enter``/``exit`` (see the module docstring) and set the class
    flags below. The hooks' defaults (``enter``, ``exit``, ``fork``) come from
    :class:`resilient_http._engine.Hooked`.
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

    def __call__(  # replaced by generated code: see __init_subclass__
        self, request: ClientRequest, handler: ClientHandlerType
    ) -> Coroutine[Any, Any, ClientResponse]:
        """Run as an aiohttp client middleware."""
        raise NotImplementedError  # pragma: no cover

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # A class's own __call__ (or one it inherits from a user's class) is left alone.
        if not cls._fused and getattr(cls.__call__, "_generated", False):
            cls.__call__ = _generated(_hooks((cls,)), "self", None)  # type: ignore[method-assign]

    @property
    def layers(self) -> tuple[Layer, ...]:
        """The layers this object runs, outermost first (just itself for a single layer)."""
        return (self,)


# Generated fast paths by shape and mode, so that a new layer or stack of a known shape (one
# made per request, say) costs no compilation (~0.4 ms). Shapes come from the program's own
# classes; the cap only guards against a program that makes classes on the fly.
_SHAPES: dict[tuple[str, Hooks, bool | None], Callable[..., Any]] = {}
_MAX_SHAPES: Final = 4096


def _generated(hooks: Hooks, mode: str, reads: bool | None) -> Callable[..., Any]:
    """The fast path of a shape in a mode (see :func:`resilient_http._codegen._compile`)."""
    key = (mode, hooks, reads)
    run = _SHAPES.get(key)
    if run is None:
        if len(_SHAPES) >= _MAX_SHAPES:
            _SHAPES.clear()
        run = _SHAPES[key] = _compile(hooks, mode, reads)
    return run


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
        # The instance's class is a subclass of ``cls`` made once per shape of layers and body
        # flag: its __call__ is the shape's generated code, called by aiohttp with no frame
        # between, and knows whether to read the body without looking.
        self = object.__new__(_stack_class(cls, plan.shape, plan.reads_body))
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
        run = _generated(self._plan.shape, "stack", self.reads_body)
        return run(self, request, handler)  # type: ignore[no-any-return]

    @property
    def layers(self) -> tuple[Layer, ...]:
        """The layers, outermost first."""
        return self._layers

    def __repr__(self) -> str:
        return f"Stack({', '.join(map(repr, self._layers))})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self).__base__, self._layers)


_STACK_CLASSES: dict[tuple[type[Stack], Hooks, bool], type[Stack]] = {}


def _stack_class(base: type[Stack], hooks: Hooks, reads: bool) -> type[Stack]:
    key = (base, hooks, reads)
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
            namespace["__call__"] = _generated(hooks, "stack", reads)
        cls = _STACK_CLASSES[key] = type(base.__name__, (base,), namespace)
    return cls


Layer.__call__ = _generated(_hooks((Layer,)), "self", None)  # type: ignore[method-assign]

from resilient_http._wrap import Wrapped, resilient, wrap  # noqa: E402 (they use Stack)
