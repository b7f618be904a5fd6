"""Small layers the engine tests use: each exercises one part of the protocol."""

from __future__ import annotations

from typing import Any

import aiohttp

import resilient_http as rh
from resilient_http._middleware import REENTER, REQUEST, Call, Short, Step
from resilient_http._response import status_response


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

    def __init__(self, times: int) -> None:
        self.times = times

    def enter(self, call: Call, i: int) -> Step:
        call[i] = 1
        return None

    def exit(self, call: Call, i: int, result: Any, error: BaseException | None) -> Step:
        if call[i] < self.times:
            call[i] += 1
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


class Scripted(rh.Layer):
    """Answers its hooks as told, logging each: ``enter``/``exit`` name one answer of the
    protocol ("none", "short", "raise", "await-none", "await-short", and for ``exit`` also
    "reenter" and "await-reenter", which re-run the inner layers once)."""

    __slots__ = ("name", "log", "on_enter", "on_exit")

    def __init__(self, name: str, log: list[str], enter: str = "none", exit: str = "none"):
        self.name = name
        self.log = log
        self.on_enter = enter
        self.on_exit = exit

    def enter(self, call: Call, i: int) -> Step:
        self.log.append(f"enter {self.name}")
        return self._answer(self.on_enter, call, i, None)

    def exit(self, call: Call, i: int, result: Any, error: BaseException | None) -> Step:
        outcome = type(error).__name__ if error is not None else _describe(result)
        self.log.append(f"exit {self.name} {outcome}")
        return self._answer(self.on_exit, call, i, result)

    def _answer(self, how: str, call: Call, i: int, result: Any) -> Step:
        if how.startswith("await-"):
            return self._later(how[6:], call, i, result)
        return self._now(how, call, i, result)

    async def _later(self, how: str, call: Call, i: int, result: Any) -> Any:
        self.log.append(f"awaited {self.name}")
        return self._now(how, call, i, result)

    def _now(self, how: str, call: Call, i: int, result: Any) -> Any:
        if how == "none":
            return None
        if how == "raise":
            raise ValueError(self.name)
        if isinstance(result, aiohttp.ClientResponse):
            result.release()
        if how == "short":
            request = call[REQUEST]
            if request is None:
                return Short(f"short {self.name}")
            return Short(status_response(request, 299, f"short {self.name}"))
        if call[i] is None:  # "reenter": once per call
            call[i] = True
            return REENTER
        return None


def _describe(result: Any) -> str:
    if isinstance(result, aiohttp.ClientResponse):
        return str(result.status)
    return str(result)
