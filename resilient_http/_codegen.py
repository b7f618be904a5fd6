"""The generated fast path of a stack's shape (see :mod:`resilient_http._middleware`): every
hook called directly, in a straight line, for as long as each one answers ``None``; anything
else is handed over to the general engine (:func:`resilient_http._engine._drive`) at that
point."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, Final

from aiohttp import ClientResponse

from resilient_http._engine import _SCOPE
from resilient_http._protocol import _FIRST, Hooks, Short

__all__: list[str] = []

# Deeper stacks than this use the general engine from the start: the generated code nests one
# block per hook, and Python limits nesting to 100 levels.
_MAX_GENERATED: Final = 32

# Per mode: the signature, and where the plan comes from.
_MODES: Final = {
    # a layer alone as a middleware: layer.__call__(request, handler)
    "self": ("self, request, handler", "_plan_of(self)"),
    # a Stack as a middleware: stack.__call__(request, handler)
    "stack": ("self, request, handler", "self._plan"),
    # the decorator: run(plan, fn, args, kwargs)
    "call": ("plan, handler, args, kwargs", "plan"),
}


def _compile(
    hooks: Hooks, mode: str, reads: bool | None
) -> Callable[..., Coroutine[Any, Any, Any]]:
    """Generate the fast path of a shape in a mode (``reads``: whether the stack reads the
    body, ``None`` to look at ``self.reads_body`` on each call).

    Generated (like ``dataclasses`` does) because a loop over the hooks costs ~40 ns per hook
    and request in bookkeeping alone, and the ``__call__`` of a layer class or stack shape, so
    that no Python frame stands between aiohttp and it. The common path stores nothing but
    the hooks' answers and the result: where a call leaves it (which hook raised, whether
    the handler had returned) is read on the way out of the one ``try`` from the line it
    left by (``_AT``), so no per-hook bookkeeping runs when nothing goes wrong.
    """
    params, plan = _MODES[mode]
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
        return _build(src, {})
    if mode == "self":  # hooks are called as methods of self: a subclass's own hooks run
        names = ["self"] * n
    else:
        names = [f"L{k}" for k in range(n)]
        if n:
            src.append(f"    {''.join(f'{name}, ' for name in names)}= "
                       f"{'self._layers' if requests else 'plan.layers'}")
    at: dict[int, tuple[int, bool]] = {}  # line -> (the layer it runs, n: the handler; release)

    def line(pad: str, code: str, k: int, release: bool = False) -> None:
        src.append(pad + code)
        at[len(src)] = (k, release)

    src.append("    try:")
    pad = "        "
    answered: list[tuple[str, list[str]]] = []  # per `if step is None:`, its else's lines
    # Hooks are called as methods: a little cheaper in CPython 3.11 than a function kept in a
    # closure cell called with the layer (-0.1k instructions per layer), and a subclass that
    # wraps __call__ and calls super().__call__ still runs its own hooks. The shape (which
    # hooks each class overrides) decides which calls are written.
    for k in (k for k in range(n) if hooks[k][0] is not None):
        line(pad, f"step = {names[k]}.enter(call, {_FIRST + k})", k)
        src.append(f"{pad}if step is None:")
        go_on = [f"rest = _drive({plan}, call, {k}, False, step, None, None)"]
        if all(hooks[j][1] is None for j in range(k)):
            # No layer outside this one has an exit: its Short (a cache hit) is the answer,
            # without a second coroutine through the general engine (~4k instructions).
            go_on[:0] = ["if type(step) is _Short:", "    return step.value"]
        answered.append((pad, go_on))
        pad += "    "
    exits = [k for k in reversed(range(n)) if hooks[k][1] is not None]
    if requests:
        line(pad, "result = await handler(request)", n)
        check = {None: "self.reads_body and not result.content.is_eof()",
                 True: "not result.content.is_eof()"}.get(reads)
    else:
        line(pad, "result = await handler(*args, **kwargs)", n)
        check = "isinstance(result, ClientResponse) and not result.content.is_eof()"
        check = check if reads else None
    if check is not None:  # at EOF, nothing is left to wait for (and content reads it again)
        line(pad, f"if {check}:", n, True)
        line(pad, "    _replay(result, await result.read())", n, True)
    if check is None and not exits:  # the handler's answer is the answer
        src[-1] = src[-1].replace("result = await", "return await")
    for k in exits:
        line(pad, f"step = {names[k]}.exit(call, {_FIRST + k}, result, None)", k)
        src.append(f"{pad}if step is None:")
        answered.append((pad, [f"rest = _drive({plan}, call, {k}, True, step, result, None)"]))
        pad += "    "
    if check is not None or exits:
        src.append(f"{pad}return result")
    for pad, go_on in reversed(answered):
        src += [f"{pad}else:", *(f"{pad}    {code}" for code in go_on)]
    src += ["    except BaseException as exc:", "        error = exc"]
    if answered:
        src += ["    else:", "        return await rest"]
    src += [
        "    i, release = _AT[error.__traceback__.tb_lineno]",  # this frame's entry: our line
        "    if release and isinstance(result, ClientResponse):",
        "        result.release()  # the body read failed",
        f"    rest = _drive({plan}, call, i - 1, True, None, None, error)",
        "    del error  # no frame <-> traceback cycle",
        "    return await rest",
    ]
    return _build(src, at)


def _build(src: list[str], at: dict[int, tuple[int, bool]]) -> Callable[..., Any]:
    scope: dict[str, Any] = {
        **_SCOPE, "ClientResponse": ClientResponse, "_AT": at, "_Short": Short
    }
    exec("\n".join(src), scope)  # our own generated source, see _compile
    run = scope["__call__"]
    run.__doc__ = "Run as an aiohttp client middleware."
    run._generated = True
    return run  # type: ignore[no-any-return]
