"""What a benchmark measures, as data: a registry of contenders.

A contender is a name, a label, and a *factory*: given the scenario's settings for it (a
mapping of keyword arguments, from ``[settings.NAME]``), the factory returns an async context
manager that yields a *caller* — ``async def call(url) -> status`` doing one logical call
(the body read) — and closes what it opened on exit. A contender names the
``resilient_http`` classes it needs (it is skipped with "layer X not available yet" when one
is missing) and the peer modules it needs (skipped when the ``[bench]`` extra is absent).

Adding a layer is a few lines::

    register(_single("Retry", {"attempts": 4}, "Retry(attempts=4) alone"))

Stacks written in a scenario file (``[stacks]``) are contenders too (:func:`from_specs`).
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp

import resilient_http as rh
from resilient_http.bench.scenario import LayerSpec

__all__ = [
    "REGISTRY",
    "Caller",
    "Contender",
    "Factory",
    "PassThrough",
    "build_spec",
    "from_specs",
    "lookup",
    "noop_mw",
    "register",
    "render_specs",
]

Caller = Callable[[str], Awaitable[int]]
"""One logical call: GET the URL, read the body, return the final status."""
Factory = Callable[[Mapping[str, Any]], AbstractAsyncContextManager[Caller]]
"""Settings → an async context manager yielding a :data:`Caller`."""

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
"""What the peers are told to retry (the same set our default classifier calls transient)."""


@dataclass(frozen=True)
class Contender:
    """One entry of the registry (see the module docstring).

    Attributes:
        name: what scenario files and ``--contenders`` call it.
        label: a short description for tables.
        factory: settings → async context manager yielding a caller.
        layers: ``resilient_http`` names it needs.
        modules: importable modules it needs (peers).
        code: settings → the Python expression of its middlewares, for ``tune``'s
            recommendation; ``None`` when it has no such form (peers, baselines).
        keywords: the keywords its factory accepts (checked against the scenario's settings,
            so a setting for an option that has not landed yet skips the contender instead
            of failing the run); ``None`` accepts anything.
    """

    name: str
    label: str
    factory: Factory
    layers: tuple[str, ...] = ()
    modules: tuple[str, ...] = ()
    code: Callable[[Mapping[str, Any]], str] | None = None
    keywords: Callable[[], frozenset[str]] | None = None

    def missing(self, settings: Mapping[str, Any] | None = None) -> str | None:
        """Why it cannot run here with these settings, or ``None``."""
        for layer in self.layers:
            if not hasattr(rh, layer):
                return f"layer {layer} not available yet"
        for module in self.modules:
            if importlib.util.find_spec(module) is None:
                return f"{module} not installed (pip install 'resilient-http[bench]')"
        if settings and self.keywords is not None:
            unknown = sorted(set(settings) - self.keywords())
            if unknown:
                return f"{self.label} takes no {', '.join(unknown)} option yet"
        return None


REGISTRY: dict[str, Contender] = {}
"""Every known contender by name."""


def register(contender: Contender) -> Contender:
    """Add (or replace) a contender in :data:`REGISTRY`."""
    REGISTRY[contender.name] = contender
    return contender


def lookup(name: str, stacks: Mapping[str, tuple[LayerSpec, ...]] | None = None) -> Contender:
    """A contender by name: a stack of the scenario first, then the registry."""
    if stacks and name in stacks:
        return from_specs(name, stacks[name])
    try:
        return REGISTRY[name]
    except KeyError:
        known = sorted({*REGISTRY, *(stacks or {})})
        raise KeyError(f"unknown contender {name!r}; known: {', '.join(known)}") from None


# --- callers ------------------------------------------------------------------------------


def _session_caller(session: Any) -> Caller:
    get = session.get

    async def call(url: str) -> int:
        async with get(url) as resp:
            await resp.read()
            status: int = resp.status
            return status

    return call


def _session(
    middlewares: Callable[[Mapping[str, Any]], tuple[Any, ...]],
) -> Factory:
    """A factory for a plain ``ClientSession`` with the given middlewares."""

    @asynccontextmanager
    async def factory(settings: Mapping[str, Any]) -> AsyncIterator[Caller]:
        mws = middlewares(settings)
        async with aiohttp.ClientSession(middlewares=mws) as session:
            yield _session_caller(session)

    return factory


def _keywords(obj: Callable[..., Any]) -> frozenset[str]:
    params = inspect.signature(obj).parameters.values()
    return frozenset(p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))


# --- baselines and the engine's own cost --------------------------------------------------


async def noop_mw(req: aiohttp.ClientRequest, handler: Any) -> aiohttp.ClientResponse:
    """A native aiohttp middleware that only calls the next handler (what any middleware
    costs)."""
    resp: aiohttp.ClientResponse = await handler(req)
    return resp


class PassThrough(rh.Layer):
    """A layer whose hooks do nothing but are not skipped by the engine (it overrides both),
    so a ``Stack`` of them measures the engine's own per-layer cost."""

    __slots__ = ()

    def enter(self, call: Any, i: int) -> None:
        return None

    def exit(self, call: Any, i: int, result: Any, error: BaseException | None) -> None:
        return None


register(Contender("bare", "bare aiohttp", _session(lambda s: ())))
register(Contender("mw1", "1 no-op native middleware", _session(lambda s: (noop_mw,))))
register(Contender("mw5", "5 no-op native middlewares", _session(lambda s: (noop_mw,) * 5)))
register(
    Contender(
        "stack5",
        "Stack of 5 pass-through layers",
        _session(lambda s: (rh.Stack(*(PassThrough() for _ in range(5))),)),
    )
)


# --- our layers ---------------------------------------------------------------------------


def _kwargs_code(settings: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={_value_code(v)}" for k, v in settings.items())


def _single(
    cls: str, defaults: Mapping[str, Any], label: str | None = None, name: str | None = None
) -> Contender:
    """A contender running one layer alone, built as ``rh.<cls>(**settings)``."""

    def build(settings: Mapping[str, Any]) -> tuple[Any, ...]:
        return (getattr(rh, cls)(**{**defaults, **settings}),)

    def code(settings: Mapping[str, Any]) -> str:
        return f"(rh.{cls}({_kwargs_code({**defaults, **settings})}),)"

    return Contender(name or cls.lower(), label or f"{cls} alone", _session(build),
                     layers=(cls,), code=code, keywords=lambda: _keywords(getattr(rh, cls)))


register(_single("Timeout", {"seconds": 30.0}, "Timeout(30) alone"))
register(_single("Retry", {}, "Retry() alone"))
register(_single("RateLimit", {"rate": 1_000_000}, "RateLimit (never waits) alone"))
register(_single("Cache", {"ttl": 60}, "Cache(ttl=60) alone"))
register(_single("CircuitBreaker", {}, "CircuitBreaker() alone", "breaker"))
register(_single("FieldMask", {"fields": ["id", "name"]}, "FieldMask alone"))


def _hedged(settings: Mapping[str, Any]) -> tuple[Any, ...]:
    return (rh.Stack(rh.Timeout(30), rh.Retry(4), rh.Hedge(**settings), rh.Timeout(2)),)


def _hedged_code(settings: Mapping[str, Any]) -> str:
    hedge = f"rh.Hedge({_kwargs_code(settings)})"
    return f"(rh.Stack(rh.Timeout(30), rh.Retry(4), {hedge}, rh.Timeout(2)),)"


# The flaky/outage scenarios' "ours" stack with a Hedge inside the Retry (settings: Hedge's).
register(Contender("retry-hedge", "Timeout(30) → Retry → Hedge → Timeout(2)", _session(_hedged),
                   layers=("Hedge",), code=_hedged_code, keywords=lambda: _keywords(rh.Hedge)))


def _standard_code(settings: Mapping[str, Any]) -> str:
    return f"rh.standard({_kwargs_code(settings)})"


register(
    Contender(
        "standard",
        "standard()",
        _session(lambda s: tuple(rh.standard(**s))),
        code=_standard_code,
        keywords=lambda: _keywords(rh.standard),
    )
)


# --- stacks written as data ---------------------------------------------------------------


def _value(v: Any) -> Any:
    if isinstance(v, dict) and isinstance(v.get("type"), str):
        return build_spec(LayerSpec(v["type"], {k: x for k, x in v.items() if k != "type"}))
    if isinstance(v, list):
        return [_value(x) for x in v]
    return v


def build_spec(spec: LayerSpec) -> Any:
    """The object a :class:`LayerSpec` describes: ``rh.<type>(**kwargs)``."""
    cls = getattr(rh, spec.type, None)
    if cls is None:
        raise LookupError(f"layer {spec.type} not available yet")
    return cls(**{k: _value(v) for k, v in spec.kwargs.items()})


def _value_code(v: Any) -> str:
    if isinstance(v, dict) and isinstance(v.get("type"), str):
        return _spec_code(LayerSpec(v["type"], {k: x for k, x in v.items() if k != "type"}))
    if isinstance(v, list):
        return "[" + ", ".join(_value_code(x) for x in v) + "]"
    return repr(v)


def _spec_code(spec: LayerSpec) -> str:
    return f"rh.{spec.type}({_kwargs_code(spec.kwargs)})"


def render_specs(specs: tuple[LayerSpec, ...]) -> str:
    """Python source of a stack written as data: ``rh.Stack(rh.Timeout(seconds=5), ...)``."""
    return "rh.Stack(" + ", ".join(_spec_code(s) for s in specs) + ")"


def _types(specs: tuple[LayerSpec, ...]) -> tuple[str, ...]:
    out: list[str] = []

    def visit(v: Any) -> None:
        if isinstance(v, dict) and isinstance(v.get("type"), str):
            out.append(v["type"])
            for x in v.values():
                visit(x)
        elif isinstance(v, list):
            for x in v:
                visit(x)

    for spec in specs:
        out.append(spec.type)
        for x in spec.kwargs.values():
            visit(x)
    return tuple(dict.fromkeys(out))


def from_specs(name: str, specs: tuple[LayerSpec, ...]) -> Contender:
    """A contender for a stack written as data (a scenario's ``[stacks]`` or a tuning grid
    point). Its settings are ignored: the specs carry the arguments."""

    def build(settings: Mapping[str, Any]) -> tuple[Any, ...]:
        return (rh.Stack(*(build_spec(s) for s in specs)),)

    return Contender(
        name,
        render_specs(specs).replace("rh.", ""),
        _session(build),
        layers=_types(specs),
        code=lambda settings: f"({render_specs(specs)},)",
    )


# --- peers (the [bench] extra) ------------------------------------------------------------


@asynccontextmanager
async def _aiohttp_retry(settings: Mapping[str, Any]) -> AsyncIterator[Caller]:
    from aiohttp_retry import ExponentialRetry, RetryClient

    options = ExponentialRetry(
        attempts=int(settings.get("attempts", 4)),
        start_timeout=float(settings.get("start_timeout", 0.1)),
        statuses=set(RETRY_STATUSES),
        exceptions={aiohttp.ClientError, asyncio.TimeoutError},
    )
    async with RetryClient(retry_options=options, raise_for_status=False) as client:
        yield _session_caller(client)


def _raising(session: aiohttp.ClientSession) -> Callable[[str], Awaitable[int]]:
    """A call that raises ``ClientResponseError`` on an error status, for decorator peers
    that retry on exceptions."""

    async def fetch(url: str) -> int:
        async with session.get(url) as resp:
            await resp.read()
            resp.raise_for_status()
            return resp.status

    return fetch


@asynccontextmanager
async def _tenacity(settings: Mapping[str, Any]) -> AsyncIterator[Caller]:
    import tenacity

    async with aiohttp.ClientSession() as session:
        decorate = tenacity.retry(
            stop=tenacity.stop_after_attempt(int(settings.get("attempts", 4))),
            wait=tenacity.wait_random_exponential(
                multiplier=float(settings.get("multiplier", 0.1)),
                max=float(settings.get("max", 2.0)),
            ),
            retry=tenacity.retry_if_exception_type((aiohttp.ClientError, asyncio.TimeoutError)),
            reraise=True,
        )
        yield decorate(_raising(session))


@asynccontextmanager
async def _stamina(settings: Mapping[str, Any]) -> AsyncIterator[Caller]:
    import stamina
    import stamina.instrumentation

    # stamina logs every retry by default (to stderr without a logging setup), which would
    # garble the table; the benchmark runs it without hooks, as our layers run without
    # event hooks.
    hooks = stamina.instrumentation.get_on_retry_hooks()
    stamina.instrumentation.set_on_retry_hooks([])
    try:
        async with aiohttp.ClientSession() as session:
            decorate = stamina.retry(
                on=(aiohttp.ClientError, asyncio.TimeoutError),
                attempts=int(settings.get("attempts", 4)),
                wait_initial=float(settings.get("wait_initial", 0.1)),
                wait_max=float(settings.get("wait_max", 2.0)),
                timeout=None,
            )
            yield decorate(_raising(session))
    finally:
        stamina.instrumentation.set_on_retry_hooks(hooks)


@asynccontextmanager
async def _aiolimiter(settings: Mapping[str, Any]) -> AsyncIterator[Caller]:
    from aiolimiter import AsyncLimiter

    limiter = AsyncLimiter(float(settings.get("rate", 1_000_000)), 1.0)
    async with aiohttp.ClientSession() as session:
        inner = _session_caller(session)

        async def call(url: str) -> int:
            async with limiter:
                return await inner(url)

        yield call


@asynccontextmanager
async def _client_cache(settings: Mapping[str, Any]) -> AsyncIterator[Caller]:
    from aiohttp_client_cache.backends.base import CacheBackend
    from aiohttp_client_cache.session import CachedSession

    backend = CacheBackend(expire_after=float(settings.get("expire_after", 60)))
    async with CachedSession(cache=backend) as session:
        yield _session_caller(session)


register(Contender("aiohttp-retry", "aiohttp-retry RetryClient", _aiohttp_retry,
                   modules=("aiohttp_retry",)))
register(Contender("tenacity", "tenacity @retry", _tenacity, modules=("tenacity",)))
register(Contender("stamina", "stamina @retry", _stamina, modules=("stamina",)))
register(Contender("aiolimiter", "aiolimiter around the call", _aiolimiter,
                   modules=("aiolimiter",)))
register(Contender("aiohttp-client-cache", "aiohttp-client-cache (memory)", _client_cache,
                   modules=("aiohttp_client_cache",)))
