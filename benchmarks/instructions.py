"""CPU instructions per request, counted by callgrind: repeatable where req/s is not.

    python benchmarks/instructions.py                     # the README's table
    python benchmarks/instructions.py bare mw1 standard cache --requests 512

The same as ``resilient-http bench --instructions``; see
:mod:`resilient_http.bench.instructions` for the method and the contenders. Needs valgrind
(``apt-get install valgrind``).
"""

from __future__ import annotations

from resilient_http.bench.instructions import CONTENDERS, callgrind, main

__all__ = ["CONTENDERS", "callgrind", "main"]

if __name__ == "__main__":
    raise SystemExit(main())
