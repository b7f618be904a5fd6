"""The servers a benchmark runs against, each in its own process.

- :class:`NginxUpstream`: nginx with a fixed ``200 ok`` on loopback (one worker, no master,
  no access log), for pure-overhead scenarios, when ``nginx`` is on ``PATH``. Its own
  ``stub_status`` counts requests; its CPU time is read from ``/proc``.
- :class:`MockUpstream`: the project's MockServer in process mode
  (``python -m resilient_http.testing``), configured per run through ``/__control/configure``
  with the scenario's profile; ``/__control/stats`` gives its counts and CPU time.
- :class:`InProcessUpstream`: a MockServer in this process, for the test suite (its CPU time
  is the client's, so it reports none).

:class:`Upstreams` starts each lazily and stops all of them at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import aiohttp

from resilient_http.bench.scenario import Profile, Scenario

__all__ = [
    "InProcessUpstream",
    "MockUpstream",
    "NginxUpstream",
    "Stats",
    "Upstream",
    "Upstreams",
    "profile_config",
    "window_config",
]


@dataclass(frozen=True)
class Stats:
    """A server's counters at one moment (``None`` where it cannot tell)."""

    count: int | None
    """Requests received on the route."""
    status_429: int | None
    """429 answers sent on the route."""
    cpu: float | None
    """The server process's CPU seconds so far."""
    outage_during: int | None = None
    """Requests that arrived during the route's outage window (``None``: no window)."""


class Upstream(Protocol):
    """What the runner needs from a server."""

    description: str
    """Shown above the results: which server, and why."""

    def url(self, path: str) -> str:
        """The absolute URL of ``path``."""
        ...

    async def prepare(self, profile: Profile) -> None:
        """Fresh state (counters, rate-limit buckets, caches) playing ``profile``."""
        ...

    async def arm(self, profile: Profile) -> None:
        """The measured calls start now: start the profile's outage window (if it has one)
        on the server's clock."""
        ...

    async def stats(self, path: str) -> Stats:
        """Counters of ``path`` now."""
        ...


def _mean_latency(profile: Profile) -> float:
    latency = profile.latency
    return (latency[0] + latency[1]) / 2 if isinstance(latency, tuple) else latency


def window_config(profile: Profile) -> dict[str, Any] | None:
    """The MockServer document that starts the profile's outage window now, or ``None``.

    The route's replies stay as :func:`profile_config` set them (nothing is reset); during
    the window every reply is ``error_status``, after the profile's mean latency."""
    window = profile.window
    if window is None:
        return None
    outage = {"start": window[0], "end": window[1], "status": profile.error_status,
              "delay": _mean_latency(profile)}
    return {"routes": [{"path": profile.path, "outage": outage}]}


def profile_config(profile: Profile) -> dict[str, Any]:
    """The MockServer configuration document (``/__control/configure``) of a profile."""
    latency: Any = list(profile.latency) if isinstance(profile.latency, tuple) else (
        profile.latency
    )
    route: dict[str, Any] = {"path": profile.path}
    if profile.cache_control is not None:
        route["cacheable"] = {
            "body": profile.body,
            "etag": '"bench-v1"',
            "cache_control": profile.cache_control,
        }
    elif profile.outage:
        route["script"] = [{"status": profile.error_status, "delay": _mean_latency(profile)}]
    elif (profile.error_ratio or profile.reset_ratio or profile.truncate_ratio
          or profile.slow_ratio or profile.tail_ratio or latency):
        route["random_faults"] = {
            "error_ratio": profile.error_ratio,
            "error_status": profile.error_status,
            "reset_ratio": profile.reset_ratio,
            "truncate_ratio": profile.truncate_ratio,
            "slow_ratio": profile.slow_ratio,
            "slow_body": profile.slow_body,
            "tail_ratio": profile.tail_ratio,
            "tail_latency": (list(profile.tail_latency) if isinstance(profile.tail_latency, tuple)
                             else profile.tail_latency),
            "latency": latency,
            "seed": profile.seed,
            "success": {"status": 200, "body": profile.body},
        }
    else:
        route["script"] = [{"status": 200, "body": profile.body}]
    if profile.rate_limit is not None:
        route["rate_limited"] = {"rate": profile.rate_limit, "burst": profile.rate_burst}
    return {"reset": True, "record": False, "routes": [route]}


def _mock_stats(data: dict[str, Any], path: str, cpu: bool = True) -> Stats:
    entry = data.get("paths", {}).get(path, {})
    statuses = entry.get("statuses", {})
    outage = entry.get("outage")
    return Stats(
        count=int(entry.get("count", 0)),
        status_429=int(statuses.get("429", 0)),
        cpu=float(data["cpu_time"]) if cpu and "cpu_time" in data else None,
        outage_during=int(outage["during"]) if outage else None,
    )


class MockUpstream:
    """The MockServer in its own process (see the module docstring)."""

    description = "MockServer (own process)"

    def __init__(self) -> None:
        self._proc: Any = None

    async def start(self) -> None:
        from resilient_http.testing.process import MockServerProcess

        proc = MockServerProcess()
        await proc.start()
        self._proc = proc

    async def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            await proc.close()

    def url(self, path: str) -> str:
        return str(self._proc.url(path))

    async def prepare(self, profile: Profile) -> None:
        await self._proc.configure(profile_config(profile))

    async def arm(self, profile: Profile) -> None:
        config = window_config(profile)
        if config is not None:
            await self._proc.configure(config)

    async def stats(self, path: str) -> Stats:
        return _mock_stats(await self._proc.stats(), path)


class InProcessUpstream:
    """A MockServer running in this process (tests): counts, no CPU share."""

    description = "MockServer (in this process)"

    def __init__(self, server: Any) -> None:
        self._server = server

    def url(self, path: str) -> str:
        return str(self._server.url(path))

    async def prepare(self, profile: Profile) -> None:
        self._server.configure(profile_config(profile))

    async def arm(self, profile: Profile) -> None:
        config = window_config(profile)
        if config is not None:
            self._server.configure(config)

    async def stats(self, path: str) -> Stats:
        return _mock_stats(self._server.stats(), path, cpu=False)


_NGINX_CONF = """\
worker_processes 1;
daemon off;
master_process off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log crit;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    server {{
        listen 127.0.0.1:{port};
        location = /__nginx_status {{ stub_status; }}
        location / {{
            default_type text/plain;{headers}
            return 200 "{body}";
        }}
    }}
}}
"""


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _read_log(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _proc_cpu(pid: int) -> float | None:
    """CPU seconds (user + system) of a process, from ``/proc`` (Linux); ``None`` elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class NginxUpstream:
    """nginx answering ``200 <body>`` to everything (see the module docstring)."""

    def __init__(self, executable: str, body: str = "ok", cache_control: str | None = None,
                 ) -> None:
        self._exe = executable
        self._body = body
        self._cache_control = cache_control
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._session: aiohttp.ClientSession | None = None
        self._port = 0
        self._reads = 0
        what = "fixed 200" + (f", Cache-Control: {cache_control}" if cache_control else "")
        self.description = f"nginx ({what}; own process, 1 worker)"

    async def start(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="rh-bench-nginx-")
        tmp = self._tmp.name
        self._port = _free_port()
        conf = Path(tmp) / "nginx.conf"
        headers = ""
        if self._cache_control is not None:
            headers = (f'\n            add_header Cache-Control "{_quote(self._cache_control)}";'
                       """\n            add_header ETag '"bench-v1"';""")
        conf.write_text(_NGINX_CONF.format(tmp=tmp, port=self._port, body=_quote(self._body),
                                           headers=headers))
        self._proc = await asyncio.create_subprocess_exec(
            self._exe, "-p", tmp, "-c", str(conf),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 5.0
        while True:
            if self._proc.returncode is not None:
                err = _read_log(Path(tmp, "error.log"))
                await self.close()
                raise RuntimeError(f"nginx exited at start: {err.strip()}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self._port)
            except OSError:
                if time.monotonic() > deadline:
                    await self.close()
                    raise RuntimeError("nginx did not listen within 5 s") from None
                await asyncio.sleep(0.01)
                continue
            writer.close()
            await writer.wait_closed()
            break
        self._session = aiohttp.ClientSession()

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 5.0)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._port}{path}"

    async def prepare(self, profile: Profile) -> None:
        if not profile.plain or profile.cache_control != self._cache_control:
            raise ValueError("this nginx only plays a plain always-200 profile "
                             f"with Cache-Control {self._cache_control!r}")

    async def arm(self, profile: Profile) -> None:
        return None  # prepare() refused every profile with a window

    async def stats(self, path: str) -> Stats:
        assert self._session is not None and self._proc is not None
        async with self._session.get(self.url("/__nginx_status")) as resp:
            text = await resp.text()
        # "Active connections: N \nserver accepts handled requests\n A H R \n..."
        requests = int(text.splitlines()[2].split()[2])
        # The status request counts itself: the route saw `requests - status reads so far`.
        self._reads += 1
        return Stats(count=requests - self._reads, status_429=0, cpu=_proc_cpu(self._proc.pid))


class Upstreams:
    """Starts servers on demand, one of each kind, and stops them all on :meth:`close`.

    Args:
        prefer: ``"auto"`` (nginx for plain profiles when installed), ``"mock"`` (never
            nginx) or ``"nginx"`` (nginx whenever the profile is plain).
    """

    def __init__(self, prefer: str = "auto") -> None:
        if prefer not in ("auto", "mock", "nginx"):
            raise ValueError(f"prefer must be 'auto', 'mock' or 'nginx', got {prefer!r}")
        self.prefer = prefer
        self._nginx: dict[tuple[str, str | None], NginxUpstream] = {}
        self._mock: MockUpstream | None = None

    async def for_scenario(self, scenario: Scenario) -> tuple[Upstream, str]:
        """The server for a scenario, and a line saying which and why: nginx when the profile
        is plain, nginx is installed and neither the scenario nor ``prefer`` says ``"mock"``;
        the MockServer otherwise."""
        want = scenario.server if self.prefer == "auto" else self.prefer
        note = ""
        if want != "mock" and scenario.profile.plain:
            exe = shutil.which("nginx")
            if exe is not None:
                key = (scenario.profile.body, scenario.profile.cache_control)
                if key not in self._nginx:
                    nginx = NginxUpstream(exe, *key)
                    await nginx.start()
                    self._nginx[key] = nginx
                return self._nginx[key], self._nginx[key].description
            note = "nginx not installed: the server may be the limit, see its CPU share"
        elif want == "nginx":
            note = "nginx cannot play this profile"
        if self._mock is None:
            mock = MockUpstream()
            await mock.start()
            self._mock = mock
        return self._mock, self._mock.description + (f" ({note})" if note else "")

    async def close(self) -> None:
        """Stop every server started."""
        for nginx in self._nginx.values():
            await nginx.close()
        self._nginx.clear()
        if self._mock is not None:
            await self._mock.close()
            self._mock = None
