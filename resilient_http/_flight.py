"""Single flight: concurrent misses of one key wait for one upstream call.

The first caller to miss becomes the *leader* of a :class:`Flight`; the others wait on it
and are woken with its outcome (the stored entry, or ``None`` when there is nothing to
share: they then go on their own). A leader that is cancelled hands the flight over to one
waiter, woken with :data:`LEAD`, which goes upstream in its place while the others go on
waiting. Used by ``Cache`` in request and decorator modes.
"""

from __future__ import annotations

import asyncio
from typing import Any

from resilient_http._rfc9111 import Entry

__all__ = ["Flight", "LEAD", "Pending", "hand_over"]

LEAD: Any = object()
"""The outcome that makes a waiter the flight's leader (see :func:`hand_over`)."""


class Flight(list["asyncio.Future[Any]"]):
    """One upstream request that concurrent misses of the same key wait for: the list of
    their futures (a list, so that a flight nobody waits on costs one empty list)."""

    __slots__ = ()

    def wait(self) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.append(fut)
        return fut

    def done(self, outcome: Any) -> None:
        for fut in self:
            if not fut.done():
                fut.set_result(outcome)


class Pending:
    """Per-call state of a request that went upstream."""

    __slots__ = ("key", "fkey", "owner", "entry", "request_time", "added", "flight", "stale")

    def __init__(
        self, key: str, fkey: Any, owner: str | None, entry: Entry | None, now: float
    ) -> None:
        self.key = key
        self.fkey = fkey
        self.owner = owner
        self.entry = entry
        self.request_time = now
        self.added: tuple[tuple[str, str], ...] = ()
        self.flight: Flight | None = None
        """The flight this call leads (others wait for it), or ``None``."""
        self.stale: tuple[float, Any] | None = None
        """Decorator mode: the expired memoized result, for stale-if-error."""


def hand_over(flights: dict[Any, Flight], pending: Pending) -> bool:
    """End ``pending``'s lead (a cancelled leader): the first waiter still waiting becomes
    the leader (woken with :data:`LEAD`); with none left, the flight ends. Returns whether a
    waiter took it over."""
    flight = pending.flight
    if flight is None:
        return False
    pending.flight = None
    while flight:
        fut = flight.pop(0)
        if not fut.done():
            fut.set_result(LEAD)
            return True
    if flights.get(pending.fkey) is flight:
        del flights[pending.fkey]
    return False
