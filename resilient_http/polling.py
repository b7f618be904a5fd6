"""``poll()`` / ``poll_updates()``: wait for a long-running job (a fine-tuning job, a batch,
a Google long-running operation) by GETting its resource until it is done, with backoff
between polls and a deadline.

::

    job = await rh.poll(session, f"https://api.openai.com/v1/fine_tuning/jobs/{job_id}",
                        rh.presets.openai_fine_tuning, timeout=3600)

    async for update in rh.poll_updates(session, op_url, rh.presets.google_operation,
                                        timeout=600):
        print(update.status, update.elapsed)      # one update per status change

Each poll is an ordinary request on the session you pass, so its middlewares (retry, rate
limit) apply. An HTTP error status raises aiohttp's ``ClientResponseError``.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NoReturn

import aiohttp
from yarl import URL

from resilient_http._clock import Clock
from resilient_http._fresh import config_of, fresh_reduce
from resilient_http._middleware import resilient
from resilient_http._validate import (
    clock_or_default,
    duration,
    method_name,
    optional_duration,
    session_like,
    show,
)
from resilient_http.backoff import Backoff
from resilient_http.errors import DeadlineExceeded
from resilient_http.events import Emitter, EventHook, redact_url
from resilient_http.strategies import MISSING, get_path, path_of
from resilient_http.timeout import Timeout

__all__ = ["poll", "poll_updates", "Poller", "PollUpdate", "JobSpec"]

StatusSpec = str | Sequence[str] | Callable[[Any], Any] | None


class JobSpec:
    """How to read a job resource: where its status is and when it is finished.

    Args:
        status: a dotted path (``"status"``, ``"metadata.state"``), a sequence of keys, a
            callable ``body -> status`` or ``None`` (no status: every poll is an update).
        done: the final statuses (a collection of str, needs ``status``), or a callable
            ``body -> bool``.
        name: shown in errors and events. Default ``"job"``.
    """

    __slots__ = ("_config", "status", "done", "name", "_status", "_done")

    __reduce__ = fresh_reduce

    def __init__(
        self,
        *,
        status: StatusSpec = None,
        done: Collection[str] | Callable[[Any], bool],
        name: str = "job",
    ) -> None:
        self._config = config_of(locals())
        if not isinstance(name, str) or not name:
            raise TypeError(f"name must be a non-empty str, got {show(name)}")
        self.status = status
        self.done = done
        self.name = name
        self._status = _status_fn(status)
        if callable(done):
            self._done: Callable[[Any], bool] = done
        elif isinstance(done, Collection) and not isinstance(done, str) and done:
            if not all(isinstance(s, str) for s in done):
                raise TypeError(f"done statuses must be str, got {show(done)}")
            if self._status is None:
                raise ValueError("done= as a set of statuses needs status= to read the status")
            final = frozenset(done)
            read = self._status
            # A status that is a JSON array or object is not final (nor hashable).
            self._done = lambda body: _is_final(read(body), final)
        else:
            raise TypeError(
                f"done must be a non-empty collection of final statuses or a callable "
                f"body -> bool, got {show(done)}"
            )

    def __repr__(self) -> str:
        return f"JobSpec(status={self.status!r}, done={self.done!r}, name={self.name!r})"


def _is_final(status: Any, final: frozenset[str]) -> bool:
    return isinstance(status, str) and status in final


def _status_fn(status: StatusSpec) -> Callable[[Any], Any] | None:
    if status is None:
        return None
    if callable(status):
        return status
    path = path_of("status", status)

    def read(body: Any) -> Any:
        value = get_path(body, path)
        return None if value is MISSING else value

    return read


@dataclass(frozen=True, slots=True)
class PollUpdate:
    """One observation of the job.

    Attributes:
        status: the job's status (``None`` without a status reader).
        body: the decoded JSON body of the poll.
        done: whether the job is finished.
        polls: how many polls were made so far (this one included).
        elapsed: seconds since the first poll started, on the poller's clock.
    """

    status: Any
    body: Any
    done: bool
    polls: int
    elapsed: float


def _interval_fn(interval: Any) -> Callable[[int], float]:
    """``n -> seconds``: the wait after poll ``n + 1`` (``n`` counts from 0, as
    ``Backoff.delay`` does). One per poller: it remembers the previous delay for
    ``Backoff(jitter="decorrelated")``."""
    if isinstance(interval, (int, float, timedelta)) and not isinstance(interval, bool):
        seconds = duration("interval", interval, allow_zero=True)
        return lambda n: seconds
    if isinstance(interval, Backoff):
        backoff_delay = interval.delay
        last: list[float | None] = [None]

        def from_backoff(n: int) -> float:
            last[0] = delay = backoff_delay(n, last[0])
            return delay

        return from_backoff
    method = getattr(interval, "delay", None)
    if callable(method):  # anything shaped like Backoff
        try:
            params = inspect.signature(method).parameters
            takes_previous = len(params) >= 2 or any(
                p.kind is p.VAR_POSITIONAL for p in params.values()
            )
        except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
            takes_previous = False
        previous: list[float | None] = [None]

        def backoff(n: int) -> float:
            delay = float(method(n, previous[0]) if takes_previous else method(n))
            previous[0] = delay
            return delay

        return backoff
    if callable(interval):
        return lambda n: float(interval(n))
    raise TypeError(
        f"interval must be seconds (float), a timedelta, a Backoff (anything with "
        f"delay(n)) or a callable n -> seconds, got {type(interval).__name__} {show(interval)}"
    )


DEFAULT_INTERVAL = Backoff(1.0, multiplier=1.5, cap=30.0, jitter="none")
"""The default wait between polls: 1 s, growing x1.5 per poll, at most 30 s."""


async def poll(
    session: Any,
    url: str | URL,
    job: JobSpec | None = None,
    *,
    done: Collection[str] | Callable[[Any], bool] | None = None,
    status: StatusSpec = None,
    interval: Any = None,
    timeout: float | timedelta | None = None,
    clock: Clock | None = None,
    on_event: EventHook | Sequence[EventHook] | None = None,
    method: str = "GET",
    **request_kwargs: Any,
) -> Any:
    """Poll ``url`` until the job is done; return the final decoded body.

    ::

        job = await rh.poll(session, f"https://api.openai.com/v1/fine_tuning/jobs/{job_id}",
                            rh.presets.openai_fine_tuning,
                            interval=rh.Backoff(5, cap=60, jitter="equal"), timeout=4 * 3600)
        if job["status"] != "succeeded": ...

    :func:`poll_updates` is the same as an async iterator of status changes.

    Args:
        session: a ``ClientSession`` or a :func:`~resilient_http.wrap` result. Not closed.
        url: the job resource's URL.
        job: a :class:`JobSpec` (presets: ``rh.presets.openai_fine_tuning``,
            ``openai_batch``, ``google_operation``), or pass ``done=``/``status=`` instead.
        done: the final statuses or a callable ``body -> bool`` (overrides ``job``'s).
        status: where the status is (overrides ``job``'s), see :class:`JobSpec`.
        interval: the wait between polls: seconds (``float``/``timedelta``, constant), a
            :class:`~resilient_http.Backoff` (its ``delay(n)`` before poll ``n + 2``, ``n``
            from 0, so ``Backoff(5, cap=60)`` waits up to 5 s, 10 s, 20 s, … 60 s; decorrelated
            jitter gets its previous delay) or a callable ``n -> seconds`` (same ``n``).
            Default :data:`DEFAULT_INTERVAL`: ``Backoff(1, multiplier=1.5, cap=30,
            jitter="none")``, i.e. 1 s, 1.5 s, 2.25 s, … 30 s.
        timeout: the deadline for the whole wait, polls included, in seconds; ``None``
            (default) waits as long as it takes. No wait starts that would end past it:
            the poller gives up at once with :class:`~resilient_http.DeadlineExceeded`, and a
            poll in flight at the deadline is cut.
        clock: the time source; default the event loop's. Tests pass a ``FakeClock``.
        on_event: hook(s) receiving ``poll.status`` (each change, INFO), ``poll.done``
            and ``poll.gave_up`` events.
        method: default ``"GET"``.
        **request_kwargs: passed to every request.
    """
    poller = _poller(
        session, url, job, done, status, interval, timeout, clock, on_event, method,
        request_kwargs,
    )
    return await poller._wait()


def poll_updates(
    session: Any,
    url: str | URL,
    job: JobSpec | None = None,
    *,
    done: Collection[str] | Callable[[Any], bool] | None = None,
    status: StatusSpec = None,
    interval: Any = None,
    timeout: float | timedelta | None = None,
    clock: Clock | None = None,
    on_event: EventHook | Sequence[EventHook] | None = None,
    method: str = "GET",
    **request_kwargs: Any,
) -> Poller:
    """Like :func:`poll`, as an async iterator: one :class:`PollUpdate` per status change
    (every poll when there is no status), the last one with ``done=True``.

    ::

        async for update in rh.poll_updates(session, op_url, rh.presets.google_operation):
            print(f"{update.elapsed:6.0f} s  {update.status}")
        result = update.body

    Same arguments as :func:`poll`; the deadline counts the time the caller spends between
    updates too.
    """
    return _poller(
        session, url, job, done, status, interval, timeout, clock, on_event, method,
        request_kwargs,
    )


def _poller(
    session: Any,
    url: str | URL,
    job: JobSpec | None,
    done: Collection[str] | Callable[[Any], bool] | None,
    status: StatusSpec,
    interval: Any,
    timeout: float | timedelta | None,
    clock: Clock | None,
    on_event: EventHook | Sequence[EventHook] | None,
    method: str,
    request_kwargs: dict[str, Any],
) -> Poller:
    session_like(session)
    method = method_name(method)
    if isinstance(url, str):
        url = URL(url)
    if not isinstance(url, URL) or not url.is_absolute():
        raise ValueError(f"url must be an absolute URL, got {show(url)}")
    if job is not None and not isinstance(job, JobSpec):
        raise TypeError(
            f"job must be a JobSpec (e.g. rh.presets.openai_fine_tuning), got {show(job)}"
        )
    if job is None and done is None:
        raise TypeError("poll() needs job= (a preset) or done= to know when the job is finished")
    if done is not None or status is not None:
        job = JobSpec(
            status=status if status is not None else (job.status if job else None),
            done=done if done is not None else job.done,  # type: ignore[union-attr]
            name=job.name if job else "job",
        )
    assert job is not None
    clock = clock_or_default(clock)
    return Poller(
        session,
        method,
        url,
        job,
        _interval_fn(DEFAULT_INTERVAL if interval is None else interval),
        optional_duration("timeout", timeout),
        clock,
        Emitter("poll", on_event),
        request_kwargs,
    )


class Poller:
    """What :func:`poll_updates` returns: an async iterator of :class:`PollUpdate`. Single
    use."""

    __slots__ = ("_session", "_method", "_url", "_job", "_interval", "_timeout", "_clock",
                 "_events", "_kwargs", "_polls", "_start", "_deadline", "_last", "_finished",
                 "_used")

    def __init__(
        self,
        session: Any,
        method: str,
        url: URL,
        job: JobSpec,
        interval: Callable[[int], float],
        timeout: float | None,
        clock: Clock,
        events: Emitter,
        kwargs: dict[str, Any],
    ) -> None:
        self._session = session
        self._method = method
        self._url = url
        self._job = job
        self._interval = interval
        self._timeout = timeout
        self._clock = clock
        self._events = events
        self._kwargs = kwargs
        self._polls = 0
        self._start = 0.0
        self._deadline: float | None = None
        self._last: Any = MISSING
        self._finished = False
        self._used = False

    def __aiter__(self) -> Poller:
        self._claim()
        return self

    async def __anext__(self) -> PollUpdate:
        if self._finished:
            raise StopAsyncIteration
        while True:
            update, changed = await self._step()
            if changed or update.done:
                return update

    async def _wait(self) -> Any:
        self._claim()
        while True:
            update, _ = await self._step()
            if update.done:
                return update.body

    def _claim(self) -> None:
        if self._used:
            raise RuntimeError("a poller is single use; call poll() again")
        self._used = True

    async def _step(self) -> tuple[PollUpdate, bool]:
        """Wait (unless it is the first poll), poll once, read the status."""
        clock = self._clock
        if self._polls == 0:
            self._start = clock.now()
            if self._timeout is not None:
                self._deadline = self._start + self._timeout
        else:
            wait = max(0.0, self._interval(self._polls - 1))
            if self._deadline is not None and clock.now() + wait >= self._deadline:
                self._give_up(f"the next poll (in {wait:g} s) would be past the deadline")
            if wait > 0:
                await clock.sleep(wait)
        body = await self._bounded()
        self._polls += 1
        job = self._job
        status = job._status(body) if job._status is not None else None
        finished = bool(job._done(body))
        changed = job._status is None or self._polls == 1 or status != self._last
        previous, self._last = self._last, status
        elapsed = clock.now() - self._start
        method, url, events = self._method, self._url, self._events
        if changed and job._status is not None:
            events.emit(
                "poll.status", method, url, logging.INFO,
                status=status, previous=None if previous is MISSING else previous,
                polls=self._polls, elapsed=elapsed,
            )
        if finished:
            self._finished = True
            events.emit("poll.done", method, url, logging.INFO, status=status,
                        polls=self._polls, elapsed=elapsed)
        return PollUpdate(status, body, finished, self._polls, elapsed), changed

    def _give_up(self, why: str) -> NoReturn:
        self._finished = True
        seen = self._last is not MISSING and self._last is not None
        last = f" (last status {self._last!r})" if seen else ""
        self._events.emit("poll.gave_up", self._method, self._url, logging.INFO,
                          polls=self._polls, status=None if self._last is MISSING else self._last)
        raise DeadlineExceeded(
            f"{self._job.name} at {redact_url(self._url)} not done within {self._timeout:g} s"
            f"{last} after {self._polls} polls: {why}",
            timeout=self._timeout,
        )

    async def _bounded(self) -> Any:
        if self._deadline is None:
            return await self._get()
        remaining = self._deadline - self._clock.now()
        if remaining <= 0:
            self._give_up("the deadline passed")
        guarded = resilient(Timeout(remaining, clock=self._clock))(self._get)
        try:
            return await guarded()
        except DeadlineExceeded:
            if self._clock.now() < self._deadline:
                raise  # another deadline (the session's own Timeout), not ours
            self._give_up("a poll was still in flight at the deadline")

    async def _get(self) -> Any:
        async with self._session.request(self._method, self._url, **self._kwargs) as resp:
            resp.raise_for_status()
            raw = await resp.read()
            try:
                return json.loads(raw)
            except (ValueError, RecursionError) as exc:  # RecursionError: nested too deeply
                raise aiohttp.ContentTypeError(
                    resp.request_info,
                    resp.history,
                    status=resp.status,
                    message=f"{self._job.name} status at {redact_url(self._url)} is not JSON "
                    f"({resp.content_type}): {exc}",
                    headers=resp.headers,
                ) from None

    def __repr__(self) -> str:
        return f"<Poller {self._method} {redact_url(self._url)} polls={self._polls}>"
