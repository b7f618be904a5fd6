"""The waiters of one rate-limit key: FIFO within a priority class, with an anti-starvation
rule across classes. Pure: entries are anything with ``done()`` (asyncio futures)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["WaitQueue", "URGENT", "NORMAL", "BACKGROUND", "MAX_BYPASS"]

URGENT, NORMAL, BACKGROUND = 0, 1, 2

MAX_BYPASS = 4
"""A priority class that has waiters is passed over at most this many times in a row."""


class WaitQueue:
    """Waiters of one key: FIFO within a priority class, urgent before normal before
    background, and no class passed over more than :data:`MAX_BYPASS` times in a row.

    The rule: each pick serves the highest class with waiters, unless a lower class with
    waiters has already been passed over ``MAX_BYPASS`` times in a row; then the highest such
    starved class is served (and its count reset). So while urgent work keeps tokens scarce,
    background work still gets at least one token in ``MAX_BYPASS + 2`` (one in five with two
    classes waiting).

    Entries are any objects with ``done()`` (asyncio futures): an entry that is done (cancelled,
    expired) is skipped lazily; :meth:`discard` keeps the live counts right.
    """

    __slots__ = ("queues", "live", "bypassed")

    def __init__(self) -> None:
        self.queues: tuple[deque[Any], deque[Any], deque[Any]] = (deque(), deque(), deque())
        self.live = [0, 0, 0]
        self.bypassed = [0, 0, 0]

    def __len__(self) -> int:
        live = self.live
        return live[0] + live[1] + live[2]

    def push(self, item: Any, priority: int) -> None:
        self.queues[priority].append(item)
        self.live[priority] += 1

    def ahead(self, priority: int) -> int:
        """Live waiters a newcomer of ``priority`` would wait behind (bypasses aside)."""
        return sum(self.live[: priority + 1])

    def discard(self, priority: int) -> None:
        """One entry of ``priority`` went away (done); it is dropped lazily."""
        self.live[priority] -= 1
        q = self.queues[priority]
        if len(q) > 64 and len(q) > 4 * self.live[priority]:
            keep = [x for x in q if not x.done()]
            q.clear()
            q.extend(keep)

    def drop(self, dead: Callable[[Any], bool]) -> int:
        """Remove the live entries for which ``dead(entry)`` is true; return how many."""
        gone = 0
        live = self.live
        for c, q in enumerate(self.queues):
            keep = [x for x in q if not x.done() and not dead(x)]
            gone += live[c] - len(keep)
            live[c] = len(keep)
            q.clear()
            q.extend(keep)
        return gone

    def pick(self) -> int:
        """The class whose head is served next (the queue must not be empty)."""
        live = self.live
        bypassed = self.bypassed
        top = 0 if live[0] else (1 if live[1] else 2)
        for c in range(top + 1, 3):
            if live[c] and bypassed[c] >= MAX_BYPASS:
                return c
        return top

    def pop(self) -> Any | None:
        """Remove and return the next live entry, by the rule above; ``None`` when every entry
        still counted is done: cancelled, its owner not yet run to :meth:`discard` it (a task
        is cancelled at once, it learns so on its next step)."""
        c = self.pick()
        item = self._take(c)
        if item is None:
            for other in range(3):
                if other != c and self.live[other]:
                    item = self._take(other)
                    if item is not None:
                        c = other
                        break
            else:
                return None
        bypassed = self.bypassed
        bypassed[c] = 0
        live = self.live
        for lower in range(c + 1, 3):
            if live[lower]:
                bypassed[lower] += 1
        return item

    def _take(self, c: int) -> Any | None:
        """The first entry of class ``c`` that is not done (dropping the done ones before it)."""
        q = self.queues[c]
        while q:
            item = q.popleft()
            if not item.done():
                live = self.live
                live[c] -= 1
                if not live[c]:
                    q.clear()  # drop dead entries left behind
                return item
        return None
