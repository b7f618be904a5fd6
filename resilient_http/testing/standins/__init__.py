"""Local stand-ins for well-known APIs, as ``aiohttp.web.Application`` factories.

Each module imitates the part of one API that the scripts in ``examples/`` use, with the
failures a real client meets (a reset during an upload, a 429, an exhausted rate limit),
and records what it received, so your own tests can run against them too::

    from aiohttp.test_utils import TestServer
    from resilient_http.testing.standins.fine_tuning import FineTuningAPI

    api = FineTuningAPI()
    async with TestServer(api.app()) as server:
        base_url = str(server.make_url(""))        # point your client here
        ...
    assert api.uploads[-1].complete

Modules: ``github`` (an org's repositories, Link pagination, ``X-RateLimit-*``),
``stripe`` (a list with ``has_more`` / ``starting_after``), ``llm`` (chat completions and a
batch endpoint sharing one rate limit), ``fine_tuning`` (OpenAI-style files, fine-tuning
jobs and their events).
"""
