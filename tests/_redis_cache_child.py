"""One process of the shared-cache tests: GET a URL through ``Cache(store=RedisStore)``.

    python tests/_redis_cache_child.py REDIS_URL URL [--barrier NAME]

With ``--barrier``, it first connects, counts itself in (``INCR NAME``) and waits until the
parent sets ``NAME:go``, so every process misses at the same moment. It prints one JSON line:
the status, the body (hex), the raw header fields (hex pairs) and the cache events.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import aiohttp

import resilient_http as rh


async def main(redis_url: str, url: str, barrier: list[str]) -> dict[str, Any]:
    events: list[str] = []
    async with rh.RedisStore(redis_url, socket_timeout=2.0) as store:
        cache = rh.Cache(ttl=60, store=store, on_event=lambda e: events.append(e.name))
        async with aiohttp.ClientSession(middlewares=(cache,)) as session:
            if barrier:
                name = barrier[0]
                client = store.client
                await client.incr(name)
                while not await client.exists(f"{name}:go"):  # noqa: ASYNC110 (another process)
                    await asyncio.sleep(0.005)
            async with session.get(url) as resp:
                body = await resp.read()
                out = {
                    "status": resp.status,
                    "body": body.hex(),
                    "headers": [[k.hex(), v.hex()] for k, v in resp.raw_headers],
                }
            await asyncio.gather(*cache.tasks)  # our write to Redis, if we fetched
    out["events"] = events
    return out


if __name__ == "__main__":
    args = sys.argv[1:]
    barrier = args[args.index("--barrier") + 1:] if "--barrier" in args else []
    print(json.dumps(asyncio.run(main(args[0], args[1], barrier))), flush=True)
