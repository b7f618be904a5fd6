"""The MockServer in its own process, so a benchmark's client does not share its event loop.

Command line::

    python -m resilient_http.testing --host 127.0.0.1 --port 0 [--config FILE.json] [--record]

prints one line ``LISTENING http://127.0.0.1:PORT`` to stdout once it serves (after applying
``--config``), and serves until SIGTERM or SIGINT. Configure it and read its counters over
HTTP: ``POST /__control/configure`` (the document of
:meth:`MockServer.configure <resilient_http.testing.MockServer.configure>`),
``GET /__control/stats``, ``POST /__control/reset``, ``POST /__control/clear``.

From Python, :class:`MockServerProcess` does all of that::

    async with MockServerProcess(config={"routes": [...]}) as proc:
        async with session.get(proc.url("/ok")) as resp: ...
        print(await proc.stats())
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
from yarl import URL

from resilient_http.testing.server import MockServer

__all__ = ["MockServerProcess", "main"]

_PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m resilient_http.testing",
        description="Run the resilient_http MockServer until SIGTERM/SIGINT.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="TCP port, 0 for a free one")
    parser.add_argument("--config", type=Path, help="JSON configuration file to apply")
    parser.add_argument("--record", action="store_true",
                        help="record every request (default: counters only, for speed)")
    return parser


async def serve(host: str, port: int, config: Mapping[str, Any] | None, record: bool) -> None:
    """Serve until SIGTERM or SIGINT; print ``LISTENING <origin>`` once ready."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with MockServer(host=host, port=port, record=record) as server:
        if config is not None:
            server.configure(config)
        print(f"LISTENING {server.origin}", flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    """The command-line entry point; returns the exit status."""
    args = _parser().parse_args(argv)
    config = None
    if args.config is not None:
        config = json.loads(args.config.read_text(encoding="utf-8"))
    asyncio.run(serve(args.host, args.port, config, args.record))
    return 0


class MockServerProcess:
    """Run a :class:`MockServer` in a child process and talk to its control API.

    Args:
        config: a configuration document applied once the child serves (see
            :meth:`MockServer.configure`). Default none.
        host: the address to listen on. Default ``"127.0.0.1"``.
        port: the TCP port; ``0`` (the default) picks a free one.
        record: record requests in the child (they are not readable from here; this is
            for measuring its cost). Default ``False``: counters only.
        startup_timeout: seconds to wait for ``LISTENING``. Default ``10.0``.
        python: the interpreter to run. Default ``sys.executable``.
    """

    def __init__(
        self,
        *,
        config: Mapping[str, Any] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        record: bool = False,
        startup_timeout: float = 10.0,
        python: str | None = None,
    ) -> None:
        self._config = config
        self._host = host
        self._port = port
        self._record = record
        self._startup_timeout = startup_timeout
        self._python = python or sys.executable
        self._proc: asyncio.subprocess.Process | None = None
        self._session: aiohttp.ClientSession | None = None
        self._origin: URL | None = None
        self.returncode: int | None = None
        """The child's exit status once closed (0 after a clean SIGTERM shutdown)."""

    async def start(self) -> None:
        """Launch the child and wait until it listens (and is configured)."""
        if self._proc is not None:
            raise RuntimeError("MockServerProcess is already started")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(_PROJECT_ROOT), env.get("PYTHONPATH")) if p
        )
        args = ["-m", "resilient_http.testing", "--host", self._host, "--port", str(self._port)]
        if self._record:
            args.append("--record")
        self._proc = await asyncio.create_subprocess_exec(
            self._python, *args, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, env=env,
        )
        try:
            assert self._proc.stdout is not None
            line = await asyncio.wait_for(self._proc.stdout.readline(), self._startup_timeout)
            text = line.decode("utf-8", errors="replace").strip()
            if not text.startswith("LISTENING "):
                raise RuntimeError(
                    f"MockServer process failed to start (exit {await self._proc.wait()}): "
                    f"{text!r}"
                )
            self._origin = URL(text.removeprefix("LISTENING "))
            self._session = aiohttp.ClientSession()
            if self._config is not None:
                await self.configure(self._config)
        except BaseException:
            await self.close()
            raise

    async def close(self, timeout: float = 5.0) -> None:
        """Stop the child with SIGTERM (SIGKILL after ``timeout`` seconds). Idempotent."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), timeout)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()
        self.returncode = proc.returncode

    async def __aenter__(self) -> MockServerProcess:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def origin(self) -> URL:
        """``http://host:port`` of the child server."""
        if self._origin is None:
            raise RuntimeError("MockServerProcess is not started")
        return self._origin

    @property
    def pid(self) -> int:
        """The child's process id."""
        if self._proc is None:
            raise RuntimeError("MockServerProcess is not started")
        return self._proc.pid

    def url(self, path: str = "/") -> URL:
        """The absolute URL of ``path`` on the child server."""
        if not path.startswith("/"):
            raise ValueError(f"path must start with '/', got {path!r}")
        return URL(f"{self.origin}{path}")

    async def _control(self, method: str, action: str, payload: Any = None) -> Any:
        if self._session is None:
            raise RuntimeError("MockServerProcess is not started")
        async with self._session.request(
            method, self.url(f"/__control/{action}"), json=payload
        ) as resp:
            data = await resp.json()
            if resp.status != 200:
                raise ValueError(f"MockServer rejected {action}: {data.get('error', data)}")
            return data

    async def configure(self, config: Mapping[str, Any]) -> None:
        """Apply a configuration document in the child; ``ValueError`` if it is rejected."""
        await self._control("POST", "configure", dict(config))

    async def stats(self) -> dict[str, Any]:
        """The child's counters: ``total``, ``paths``, ``cpu_time`` (see
        :meth:`MockServer.stats`)."""
        result: dict[str, Any] = await self._control("GET", "stats")
        return result

    async def reset(self) -> None:
        """Forget routes and counters in the child."""
        await self._control("POST", "reset")

    async def clear(self) -> None:
        """Forget counters (and records) in the child; routes stay."""
        await self._control("POST", "clear")
