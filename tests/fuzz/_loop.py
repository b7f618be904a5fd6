"""One event loop for all the examples of a hypothesis test, so one loopback server and one
session serve the whole test (a server per example would cost more than the example)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


class LoopRunner:
    """``run(awaitable)`` runs it to completion on a private loop; ``close()`` shuts the
    loop down cleanly (async generators, the default executor)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()

    def run(self, awaitable: Awaitable[T]) -> T:
        return self.loop.run_until_complete(awaitable)

    def close(self) -> None:
        try:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.run_until_complete(self.loop.shutdown_default_executor())
        finally:
            self.loop.close()
