"""Small layers the engine tests use: each exercises one part of the protocol."""

from __future__ import annotations

from typing import Any

import aiohttp

import resilient_http as rh
from resilient_http._middleware import REENTER, Call, Short, Step


class Recorder(rh.Layer):
    """Records its hooks into a shared log."""

    __slots__ = ("name", "log")

    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log

    def enter(self, call: Call, i: int) -> Step:
        self.log.append(f"enter {self.name}")
        return None

    def exit(self, call: Call, i: int, result: Any, error: BaseException | None) -> Step:
        outcome = type(error).__name__ if error is not None else "ok"
        self.log.append(f"exit {self.name} {outcome}")
        return None


class Again(rh.Layer):
    """Re-runs the layers inside it until the server has been asked `times` times."""

    __slots__ = ("times",)
    uses_state = True

    def __init__(self, times: int) -> None:
        self.times = times

    def enter(self, call: Call, i: int) -> Step:
        call.state[i] = 1  # type: ignore[index]
        return None

    def exit(self, call: Call, i: int, result: Any, error: BaseException | None) -> Step:
        state: list[Any] = call.state  # type: ignore[assignment]
        if state[i] < self.times:
            state[i] += 1
            if isinstance(result, aiohttp.ClientResponse):
                result.release()
            return REENTER
        return None


class Refuse(rh.Layer):
    """Fails every call on the way in."""

    __slots__ = ()

    def enter(self, call: Call, i: int) -> Step:
        raise rh.CircuitOpen("refused", retry_in=1.0)


class Answer(rh.Layer):
    """Answers every call itself, after an await (decorator mode)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def enter(self, call: Call, i: int) -> Step:
        return self._later()

    async def _later(self) -> Short:
        return Short(self.value)
