"""``RedisStore``: the connection, key naming, Lua scripts, bounded calls and health.

Layers hold no Redis code of their own beyond their script: they name keys with
:meth:`RedisStore.key`, run their script with :meth:`RedisStore.run` (or a plain command with
:meth:`RedisStore.call`), and catch :class:`~resilient_http.StoreUnavailable` to apply
:attr:`RedisStore.on_error`. The package docstring (:mod:`resilient_http.redis`) says what
each piece guarantees.

Health, as a state machine::

    healthy --(a call fails or times out: store.degraded)--> degraded
    degraded --(a background PING answers: store.recovered)--> healthy

A call made while degraded raises ``StoreUnavailable`` at once. The probe runs on the event
loop of the call that found the store degraded (a new one is started from a later call if
that loop has ended), sleeps :attr:`RedisStore.probe_interval` between tries, and each try is
bounded by ``socket_timeout``: no request ever waits for it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from importlib import resources
from typing import Any, TypeVar

import redis.asyncio as aioredis

from resilient_http._bucket_store import BucketSpec
from resilient_http._validate import number, positive_int, show
from resilient_http.errors import StoreUnavailable
from resilient_http.events import Emitter, EventHook
from resilient_http.redis._client import bounded, client_from_url, is_outage
from resilient_http.redis.ratelimit import RedisBuckets

__all__ = ["RedisStore", "ON_ERROR"]

T = TypeVar("T")

ON_ERROR = ("local", "open", "closed")
"""The allowed values of ``on_error``."""

_LAYER = re.compile(r"[a-z][a-z0-9_-]{0,31}\Z")
_PREFIX_FORBIDDEN = re.compile(r"[{}\s\x00-\x1f\x7f]")


def hash_tag(name: str) -> str:
    """The hash-tag text for a logical key: ``name`` itself when it is safe inside ``{...}``
    (non-empty, at most 200 characters, no braces, not starting with ``#``), else ``#`` and
    32 hex digits of its SHA-256."""
    if not name or len(name) > 200 or "{" in name or "}" in name or name[0] == "#":
        digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()
        return "#" + digest[:32]
    return name


class RedisStore:
    """State shared by every process through one Redis or Valkey server.

    Pass it as ``store=`` to the layers that keep state; one store serves many layers (keys
    are namespaced by layer). Needs the ``[redis]`` extra (``redis>=5``, ``redis.asyncio``).

    Args:
        url_or_client: a ``redis://`` / ``rediss://`` / ``unix://`` URL, or a
            ``redis.asyncio.Redis`` (or ``RedisCluster``) client you configured yourself. A
            client built from a URL gets ``socket_timeout`` as its socket and connect
            timeouts and no retries of its own; a client you pass keeps its settings (the
            store still bounds every call by ``socket_timeout``).
        prefix: first part of every key (``{prefix}:{layer}:{{key}}...``): processes share
            state when they use the same server and prefix. Default ``"rh"``. No braces, no
            whitespace, at most 64 characters.
        on_error: what the layers do while the server is unreachable, slow or refusing
            writes: ``"local"`` (default) keeps serving from in-process state (a rate limit
            then allows ``rate / processes`` in each process), ``"open"`` lets requests
            through unchecked, ``"closed"`` raises :class:`~resilient_http.StoreUnavailable`.
        socket_timeout: longest time one store call may take, seconds (> 0, at most 60).
            Default 0.1 (100 ms). Past it the store is degraded (see ``on_error``).
        processes: how many processes share the state, for the ``"local"`` fallback (a
            rate limit divides its rate by it). Default 1.
        on_event: hook(s) receiving ``store.degraded`` (error, on_error) and
            ``store.recovered`` (seconds degraded) events.

    Raises:
        TypeError, ValueError: a parameter of the wrong type or out of range.
    """

    __slots__ = (
        "prefix",
        "on_error",
        "socket_timeout",
        "processes",
        "probe_interval",
        "_client",
        "_owned",
        "_scripts",
        "_healthy",
        "_since",
        "_probe",
        "_emit",
    )

    def __init__(
        self,
        url_or_client: str | aioredis.Redis | aioredis.RedisCluster,
        *,
        prefix: str = "rh",
        on_error: str = "local",
        socket_timeout: float = 0.1,
        processes: int = 1,
        on_event: EventHook | Sequence[EventHook] | None = None,
    ) -> None:
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str, got {type(prefix).__name__} {show(prefix)}")
        if not prefix or len(prefix) > 64 or _PREFIX_FORBIDDEN.search(prefix):
            raise ValueError(
                "prefix must be 1 to 64 characters without braces or whitespace, "
                f"got {show(prefix)}"
            )
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error must be 'local', 'open' or 'closed', got {show(on_error)}")
        self.socket_timeout: float = number(
            "socket_timeout", socket_timeout, minimum=0.0, inclusive=False
        )
        if self.socket_timeout > 60.0:
            raise ValueError(
                f"socket_timeout must be at most 60 seconds, got {show(socket_timeout)}"
            )
        self.processes: int = positive_int("processes", processes)
        self.prefix: str = prefix
        self.on_error: str = on_error
        self.probe_interval: float = 1.0
        """Seconds between two reconnection tries while degraded."""
        if isinstance(url_or_client, str):
            self._client: Any = client_from_url(url_or_client, self.socket_timeout)
            self._owned = True
        elif isinstance(url_or_client, (aioredis.Redis, aioredis.RedisCluster)):
            self._client = url_or_client
            self._owned = False
        else:
            raise TypeError(
                "url_or_client must be a redis:// URL or a redis.asyncio.Redis/RedisCluster "
                f"client (not a synchronous redis.Redis), got {type(url_or_client).__name__}"
            )
        self._scripts: dict[str, Any] = {}
        self._healthy = True
        self._since = 0.0
        self._probe: asyncio.Task[None] | None = None
        self._emit = Emitter("RedisStore", on_event)

    # -- what layers use ------------------------------------------------------------------

    @property
    def client(self) -> Any:
        """The ``redis.asyncio`` client (for commands the store has no helper for; wrap them
        in :meth:`call` so they stay bounded and feed the health state)."""
        return self._client

    @property
    def healthy(self) -> bool:
        """``False`` while degraded (between ``store.degraded`` and ``store.recovered``)."""
        return self._healthy

    def key(self, layer: str, name: str, *parts: str) -> str:
        """The Redis key ``{prefix}:{layer}:{{tag}}[:part...]`` of logical key ``name`` in
        ``layer`` (e.g. ``"ratelimit"``); the tag is :func:`hash_tag` of ``name``, so every
        key of one logical key hashes to one Cluster slot."""
        if not _LAYER.match(layer):
            raise ValueError(f"layer must match [a-z][a-z0-9_-]{{0,31}}, got {layer!r}")
        tagged = f"{self.prefix}:{layer}:{{{hash_tag(name)}}}"
        return ":".join((tagged, *parts)) if parts else tagged

    def script(self, name: str) -> Any:
        """The registered script ``resilient_http/redis/{name}.lua`` (read once; run by
        ``EVALSHA``, loaded again on ``NOSCRIPT``)."""
        found = self._scripts.get(name)
        if found is None:
            text = resources.files(__package__).joinpath(f"{name}.lua").read_text("utf-8")
            found = self._scripts[name] = self._client.register_script(text)
        return found

    async def run(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run script ``name`` on ``keys`` with ``args``, bounded by ``socket_timeout``.

        Raises:
            StoreUnavailable: the store is degraded, or this call failed or timed out (which
                degrades it). A script error (a bug) is raised as redis' ``ResponseError``.
        """
        script = self.script(name)
        return await self.call(script, keys, args)

    async def server_time(self) -> int:
        """The server's clock (``TIME``), integer microseconds since the epoch: the clock
        every script reads. Bounded and failing like :meth:`run`."""
        return int(await self.run("server_time", (), ()))

    async def call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """``await fn(*args)`` bounded by ``socket_timeout``, feeding the health state.

        Raises:
            StoreUnavailable: as :meth:`run`.
        """
        if not self._healthy:
            self._ensure_probe()
            raise StoreUnavailable(f"the Redis store is degraded (on_error={self.on_error!r})")
        try:
            return await bounded(fn(*args), self.socket_timeout)
        except Exception as exc:
            if not is_outage(exc):
                raise
            self._degrade(exc)
            raise StoreUnavailable(
                f"the Redis store failed ({type(exc).__name__}: {exc}); "
                f"on_error={self.on_error!r}"
            ) from exc

    # -- the layers' views ----------------------------------------------------------------

    def rate_buckets(self, spec: BucketSpec) -> RedisBuckets:
        """The shared buckets of a ``RateLimit`` configured as ``spec`` (``RateLimit`` calls
        this when given the store)."""
        return RedisBuckets(self, spec)

    # -- health ---------------------------------------------------------------------------

    def _degrade(self, exc: BaseException) -> None:
        if not self._healthy:
            return
        self._healthy = False
        self._since = time.monotonic()
        self._emit.emit(
            "store.degraded",
            None,
            None,
            logging.WARNING,
            error=f"{type(exc).__name__}: {exc}",
            on_error=self.on_error,
        )
        self._ensure_probe()

    def _ensure_probe(self) -> None:
        """Start the reconnection task unless one runs (its loop may have ended)."""
        probe = self._probe
        if probe is None or probe.done():
            self._probe = asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        while True:
            await asyncio.sleep(self.probe_interval)
            try:
                await bounded(self._client.ping(), self.socket_timeout)
            except Exception as exc:
                if not is_outage(exc):
                    raise
                continue
            self._healthy = True
            self._emit.emit(
                "store.recovered",
                None,
                None,
                logging.WARNING,
                seconds=time.monotonic() - self._since,
            )
            return

    async def aclose(self) -> None:
        """Stop the reconnection task, and close the client if the store created it."""
        probe, self._probe = self._probe, None
        if probe is not None and not probe.done():
            probe.cancel()
            if probe.get_loop() is asyncio.get_running_loop():
                await asyncio.wait((probe,))  # never raises the probe's cancellation
        if self._owned:
            close = getattr(self._client, "aclose", None) or self._client.close  # redis < 5.0.1
            await close()
            await self._client.connection_pool.disconnect()

    async def __aenter__(self) -> RedisStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        state = "" if self._healthy else ", degraded"
        return f"RedisStore(prefix={self.prefix!r}, on_error={self.on_error!r}{state})"
