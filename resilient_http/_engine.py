"""The general engine: the rules of the layer protocol (:mod:`resilient_http._middleware`) in
a loop that runs a call from any point, what it needs of a stack (its :class:`_Plan`), the
:class:`Inner` of a forking layer, and the telemetry switch."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any, Final

from aiohttp import ClientRequest, ClientResponse
from aiohttp.client_middlewares import ClientHandlerType

from resilient_http._protocol import (
    _FIRST,
    ARGS,
    FORK,
    HANDLER,
    KWARGS,
    REENTER,
    REQUEST,
    TASK,
    Call,
    Hooks,
    Short,
    Step,
)
from resilient_http._response import replay as _replay

__all__ = ["TELEMETRY", "Hooked", "Inner", "run_plan"]


class Hooked:
    """The hooks of a layer that overrides none (the base of :class:`~resilient_http.Layer`,
    which documents them)."""

    __slots__ = ()

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


def _hooks(classes: Iterable[type[Hooked]]) -> Hooks:
    return tuple(
        (
            None if cls.enter is Hooked.enter else cls.enter,
            None if cls.exit is Hooked.exit else cls.exit,
        )
        for cls in classes
    )


class _Plan:
    """What the general engine needs of a stack: its layers, their shape, their hooks as bound
    methods (``None`` for a hook the layer does not override), and whether it reads the
    body."""

    __slots__ = ("layers", "shape", "enters", "exits", "n", "reads_body")

    def __init__(self, layers: tuple[Any, ...]) -> None:
        self.layers = layers
        self.n = len(layers)
        self.shape = shape = _hooks(map(type, layers))
        self.enters = tuple(e and layer.enter for layer, (e, _) in zip(layers, shape, strict=True))
        self.exits = tuple(x and layer.exit for layer, (_, x) in zip(layers, shape, strict=True))
        self.reads_body = any(layer.reads_body for layer in layers)


def _plan_of(layer: Any) -> _Plan:
    """The plan of a layer or stack, made on the first call that leaves the fast path."""
    try:
        return layer._plan  # type: ignore[no-any-return]
    except AttributeError:
        plan = layer._plan = _Plan(layer.layers)
        return plan


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
    def outer(self) -> tuple[Any, ...]:
        return self._plan.layers[: self._k - 1]

    def __call__(self) -> Coroutine[Any, Any, Any]:
        call = self.call
        fresh = [call[REQUEST], call[HANDLER], call[ARGS], call[KWARGS], None]
        fresh += [None] * self._plan.n
        return _drive(self._plan, fresh, self._k, False, None, None, None, self._k)


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


_SCOPE: Final = {
    "_drive": _drive, "_plan_of": _plan_of, "_replay": _replay, "_TELEMETRY": TELEMETRY,
}
"""What the generated fast paths call (:mod:`resilient_http._codegen`)."""
