"""What ``Retry`` records of a call's attempts: :class:`Attempt`, the per-call :class:`Tries`,
and the methods it retries (re-exported by :mod:`resilient_http.retry`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from aiohttp import ClientRequest

from resilient_http.classify import Outcome

__all__ = [
    "Attempt", "BeforeRetry", "IDEMPOTENCY_KEY", "IDEMPOTENT_METHODS", "KEYED_METHODS", "Tries",
]

IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
"""RFC 9110 §9.2.2: the methods retried by default."""
IDEMPOTENCY_KEY: Final = "Idempotency-Key"
KEYED_METHODS: Final = frozenset({"POST", "PATCH"})
"""The methods retried when they carry an ``Idempotency-Key`` header."""


@dataclass(frozen=True, slots=True)
class Attempt:
    """What happened on one attempt (``RetriesExhausted.attempts`` holds one per attempt).

    Attributes:
        number: 1 for the first attempt.
        outcome: the classification.
        reason: why (``"status 503"``, ``"ServerDisconnectedError"``).
        status: the response status, or ``None`` when the attempt raised.
        error: the exception the attempt raised, or ``None``.
        delay: the wait before the next attempt, in seconds; ``None`` for the last attempt.
    """

    number: int
    outcome: Outcome
    reason: str
    status: int | None
    error: BaseException | None
    delay: float | None


BeforeRetry = Callable[[Attempt, ClientRequest | None], Awaitable[None]]
"""``Retry(before_retry=...)``: an async function of the failed :class:`Attempt` and the request
(``None`` in decorator mode), awaited before the next attempt."""


class Tries:
    """Per-call state once a call has failed at least once (the layer's slot holds the start
    time, a ``float``, until then)."""

    __slots__ = ("start", "count", "history", "prev_delay", "waited")

    def __init__(self, start: float) -> None:
        self.start = start
        self.count = 0
        self.history: list[Attempt] = []
        self.prev_delay: float | None = None
        self.waited = 0.0  # rate-limit waits of the discarded responses
