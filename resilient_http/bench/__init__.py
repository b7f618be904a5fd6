"""The benchmark and tuning engine behind the ``resilient-http`` command.

``resilient-http bench [SCENARIO...]`` runs scenario files (TOML, shipped in
``resilient_http/bench/scenarios/``) against a server in its own process and prints one table
per scenario; ``resilient-http tune PROFILE --param NAME=v1,v2`` runs a grid of settings
against a server profile and recommends the stack that does best, as Python code, with the
evidence.

The pieces, each small:

- :mod:`~resilient_http.bench.scenario` — the scenario files: a server profile, a load, the
  contenders, and an optional tuning grid;
- :mod:`~resilient_http.bench.upstream` — the servers: nginx for pure overhead when it is
  installed, the MockServer in its own process otherwise and for every scripted profile;
- :mod:`~resilient_http.bench.contenders` — what is measured, as data: a name, and a factory
  that builds a caller from the scenario's settings (our layers, ``standard()``, the peers);
- :mod:`~resilient_http.bench.runner` — rounds interleaved A B C A B C, one sample per
  contender per round;
- :mod:`~resilient_http.bench.metrics` — percentiles, medians, the ratio to bare aiohttp;
- :mod:`~resilient_http.bench.report` — the table (``rich`` when installed), JSON, plots;
- :mod:`~resilient_http.bench.tune` — the grid, the objective, the recommendation.

Nothing here imports an optional package (rich, matplotlib, the peers, tomli) at import time:
each is imported where it is used, and a missing one is reported, not fatal.
"""

from __future__ import annotations

__all__: list[str] = []
