"""CPU instructions per request, counted by callgrind: repeatable where req/s is not.

    python benchmarks/instructions.py                     # the README's table
    python benchmarks/instructions.py bare mw1 standard cache --requests 512

The same as ``resilient-http bench --instructions``; see
:mod:`resilient_http.bench.instructions` for the method and the contenders. Needs valgrind
(``apt-get install valgrind``).
"""

from __future__ import annotations

import os
import sys

from resilient_http.bench.instructions import CONTENDERS, callgrind, main

__all__ = ["CONTENDERS", "callgrind", "main"]


def _with_redis() -> int:
    """``main()``, with a Redis server of the test fixture's kind for the ``cache-redis*``
    contenders when ``REDIS_URL`` does not name one."""
    if "REDIS_URL" in os.environ or not any(a.startswith("cache-redis") for a in sys.argv):
        return main()
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from tests._redis import RedisServer, server_binary

    server = RedisServer(server_binary() or "redis-server")
    server.start()
    os.environ["REDIS_URL"] = server.url
    try:
        return main()
    finally:
        server.stop()


if __name__ == "__main__":
    raise SystemExit(_with_redis())
