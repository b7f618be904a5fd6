"""Every ```python block of README.md runs, in order, as the README shows it.

Each block is one test, named ``<heading>-<n>`` (its heading, slugged, and its number under
that heading), so a failure names the block. Blocks in other languages (``sh``, ``toml``,
the error tree) are not run; a Python block right after a ``<!-- not run: reason -->``
comment is skipped with that reason (none today).

The test changes the text of a block in two ways only, then runs it:

* ``https://`` becomes ``http://`` (the local server speaks plain HTTP), and
  ``redis://cache:6379/0`` becomes the test's Redis server (the ``redis_url`` fixture).
* Nothing else: every host name is kept. DNS is routed instead: for the duration of the test
  ``aiohttp.connector.DefaultResolver`` is replaced by :class:`LoopbackResolver`, which
  answers any host with 127.0.0.1 and the port of one :class:`MockServer` (running in its own
  thread and event loop, so a block may call ``asyncio.run``). Every ``ClientSession`` a block
  builds, and the ones the test provides, reach that server, which answers each README path
  with a plausible body (:data:`ROUTES`).

Three kinds of block:

* **Programs** (no top-level ``await`` and no name they do not define or import) run as
  written, with ``exec`` in a fresh ``__main__`` namespace, from a synchronous test.
* **Pytest files** (a block defining ``test_*`` functions) are written to a temporary
  directory and run by ``python -m pytest`` there, outside this project's configuration, as
  a user who copied them would.
* **Fragments** are compiled with ``ast.PyCF_ALLOW_TOP_LEVEL_AWAIT`` and awaited as the body
  of an async function, in a namespace holding what the README assumes around them
  (:func:`fragment_namespace`):

  - ``asyncio``, ``aiohttp``, ``rh`` (``import resilient_http as rh``): the Quickstart's
    imports; any other module a block uses, the block imports itself;
  - ``cache``: an ``rh.Cache(ttl=60)``;
  - ``session``: an ``aiohttp.ClientSession(middlewares=rh.standard(cache=cache))``;
  - ``existing_session``: a plain ``aiohttp.ClientSession()``;
  - ``url``: ``"http://api.example.com/v1/things"`` (answers a JSON list of two objects);
  - ``job_id``: ``"ftjob-abc123"``; ``op_name``: ``"operations/op-123"``.

  A fragment that uses a name outside its own definitions, this namespace and the builtins
  fails with the list of such names. After it ends, every session, cache and ``RedisStore``
  it left in the namespace is closed.

Process-wide state a block changes (credential names registered with
``rh.credentials.add``, the root logger) is restored after it.
"""

from __future__ import annotations

import ast
import asyncio
import builtins
import logging
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import aiohttp.connector
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

import resilient_http as rh
from resilient_http import credentials
from resilient_http.testing import MockServer, Reply

README = Path(__file__).resolve().parent.parent / "README.md"

_FENCE = re.compile(r"^```(\w*)\s*$")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*$")
_NOT_RUN = re.compile(r"^<!--\s*not run:\s*(.*?)\s*-->$")


@dataclass(frozen=True)
class Block:
    """One fenced code block of the README."""

    heading: str
    number: int  # 1-based, among the Python blocks under ``heading``
    line: int  # of the opening fence, 1-based
    source: str
    not_run: str | None  # the reason of a preceding ``<!-- not run: ... -->``

    @property
    def id(self) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", self.heading.lower()).strip("-")
        return f"{slug}-{self.number}"


def python_blocks(text: str) -> list[Block]:
    """The ```python blocks of ``text``, in order, each with the heading it sits under."""
    blocks: list[Block] = []
    heading, counts = "top", dict[str, int]()
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        fence = _FENCE.match(line)
        if fence is None:
            found = _HEADING.match(line)
            if found:
                heading = found.group(2)
            i += 1
            continue
        end = i + 1
        while end < len(lines) and not lines[end].startswith("```"):
            end += 1
        if fence.group(1) == "python":
            counts[heading] = counts.get(heading, 0) + 1
            before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
            reason = _NOT_RUN.match(before.strip())
            blocks.append(Block(heading, counts[heading], i + 1,
                                "\n".join(lines[i + 1:end]) + "\n",
                                reason.group(1) if reason else None))
        i = end + 1
    return blocks


BLOCKS = python_blocks(README.read_text(encoding="utf-8"))

# ---------------------------------------------------------------------- classification

PROVIDED = ("asyncio", "aiohttp", "rh", "cache", "session", "existing_session", "url",
            "job_id", "op_name")


def free_names(tree: ast.AST) -> set[str]:
    """Names a block reads but never binds (imports, assignments, definitions, arguments,
    ``except ... as``), builtins excluded."""
    loaded: set[str] = set()
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (loaded if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    return loaded - bound - set(dir(builtins))


def parse(source: str) -> ast.Module:
    """The syntax tree of a block, top-level ``await`` allowed."""
    tree = compile(source, "<README>", "exec",
                   ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
    assert isinstance(tree, ast.Module)
    return tree


def kind(source: str) -> str:
    """``"pytest"``, ``"program"`` or ``"fragment"`` (see the module docstring)."""
    tree = parse(source)
    if any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name.startswith("test_")
           for n in tree.body):
        return "pytest"
    try:
        compile(source, "<README>", "exec", dont_inherit=True)
    except SyntaxError:  # top-level await, async with or async for
        return "fragment"
    return "fragment" if free_names(tree) else "program"


def adapt(source: str, redis_url: str | None) -> str:
    """The two textual changes of the module docstring: scheme and the Redis URL."""
    source = source.replace("https://", "http://")
    if redis_url is not None:
        source = source.replace("redis://cache:6379/0", redis_url)
    return source


# ---------------------------------------------------------------------- the network

_THINGS = [{"id": 1, "name": "one"}, {"id": 2, "name": "two"}]

ROUTES: dict[str, Reply] = {
    # Quickstart, Retry, Cache, Circuit breaker
    "/users/42": Reply(200, json={"id": 42, "name": "Ada"}),
    "/users/1": Reply(200, json={"id": 1, "name": "Grace"},
                      headers={"Cache-Control": "max-age=60"}),
    "/items": Reply(200, json=_THINGS),
    "/v1/things": Reply(200, json=_THINGS, headers={"Cache-Control": "max-age=60"}),
    # Pagination: one last page in each API's own shape
    "/orgs/aio-libs/repos": Reply(200, json=[{"full_name": "aio-libs/aiohttp"}]),
    "/v1/customers": Reply(200, json={"object": "list", "data": [{"id": "cus_1"}],
                                      "has_more": False}),
    "/api/users.list": Reply(200, json={"ok": True, "members": [{"id": "U1"}],
                                        "response_metadata": {"next_cursor": ""}}),
    "/drive/v3/files": Reply(200, json={"files": [{"id": "f1"}]}),
    "/jsonapi/node/article": Reply(200, json={"data": [{"id": "a1"}], "links": {}}),
    "/api/v2/pokemon": Reply(200, json={"count": 1, "results": [{"name": "bulbasaur"}]}),
    "/api/character": Reply(200, json={"info": {"pages": 1}, "results": [{"name": "Rick"}]}),
    # Long-running jobs: already finished
    "/v1/fine_tuning/jobs/ftjob-abc123": Reply(200, json={
        "id": "ftjob-abc123", "status": "succeeded", "fine_tuned_model": "ft:gpt-4o-mini:demo"}),
    "/v1/operations/op-123": Reply(200, json={
        "name": "operations/op-123", "done": True, "response": {}}),
}


class LoopbackResolver(AbstractResolver):
    """Resolves every host name to 127.0.0.1 and one port: the README's hosts, routed."""

    port = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # DefaultResolver(loop=...)
        pass

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        return [ResolveResult(hostname=host, host="127.0.0.1", port=self.port,
                              family=socket.AF_INET, proto=0, flags=socket.AI_NUMERICHOST)]

    async def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[MockServer]:
    """A MockServer answering :data:`ROUTES`, in a thread with its own event loop."""
    loop = asyncio.new_event_loop()
    mock = MockServer()
    for path, reply in ROUTES.items():
        mock.script(path, reply)
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(mock.start(), loop).result(10)
    try:
        yield mock
    finally:
        asyncio.run_coroutine_threadsafe(mock.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.fixture
def routed(server: MockServer, monkeypatch: pytest.MonkeyPatch) -> MockServer:
    """Every ``TCPConnector`` made during the test resolves any host to ``server``."""
    resolver = type("Routed", (LoopbackResolver,), {"port": server.port})
    monkeypatch.setattr(aiohttp.connector, "DefaultResolver", resolver)
    return server


@pytest.fixture
def process_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Undo what a block changes for the whole process: credential names, the root logger."""
    monkeypatch.setattr(credentials, "_added", credentials._added)
    monkeypatch.setattr(credentials, "_memo", {})
    monkeypatch.setattr(credentials, "_safe", set())
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


# ---------------------------------------------------------------------- running a block


def fragment_namespace() -> dict[str, Any]:
    """What a fragment finds around it (listed in the module docstring)."""
    cache = rh.Cache(ttl=60)
    return {
        "__name__": "__readme__",
        "asyncio": asyncio,
        "aiohttp": aiohttp,
        "rh": rh,
        "cache": cache,
        "session": aiohttp.ClientSession(middlewares=rh.standard(cache=cache)),
        "existing_session": aiohttp.ClientSession(),
        "url": "http://api.example.com/v1/things",
        "job_id": "ftjob-abc123",
        "op_name": "operations/op-123",
    }


async def close_all(values: list[Any]) -> None:
    """Close the sessions, caches and stores a fragment's namespace holds."""
    for value in values:
        if isinstance(value, aiohttp.ClientResponse):
            value.release()
        elif isinstance(value, (aiohttp.ClientSession, rh.Cache)):
            await value.close()
        elif type(value).__name__ == "RedisStore":  # without importing redis
            await value.aclose()


async def run_fragment(source: str, name: str) -> None:
    code = compile(source, name, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
                   dont_inherit=True)
    namespace = fragment_namespace()
    provided = list(namespace.values())
    try:
        result = eval(code, namespace)  # a coroutine when the block awaits at top level
        if result is not None:
            await result
    finally:
        await close_all([*namespace.values(), *provided])


def run_pytest_file(source: str, tmp_path: Path) -> None:
    test_file = tmp_path / "test_from_readme.py"
    test_file.write_text(source, encoding="utf-8")
    env = dict(os.environ)
    env.pop("PYTEST_ADDOPTS", None)
    env.pop("PYTEST_XDIST_WORKER", None)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error",
         "-W", "ignore::pytest.PytestDeprecationWarning",  # pytest-asyncio's unset loop scope
         "--rootdir", str(tmp_path), str(test_file)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert " passed" in proc.stdout and "skipped" not in proc.stdout, proc.stdout


_REQUESTS = re.compile(r"\.get\(|rh\.paginate\(|rh\.poll")  # a block that sends requests


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_readme_block(block: Block, routed: MockServer, process_state: None,
                      request: pytest.FixtureRequest, tmp_path: Path) -> None:
    if block.not_run is not None:
        pytest.skip(f"README marks it not run: {block.not_run}")
    redis_url = request.getfixturevalue("redis_url") if "redis://" in block.source else None
    source = adapt(block.source, redis_url)
    name = f"README.md:{block.line} ({block.id})"
    what = kind(source)
    before = routed.count()
    if what == "pytest":
        run_pytest_file(source, tmp_path)
    elif what == "program":
        exec(compile(source, name, "exec", dont_inherit=True), {"__name__": "__main__"})
    else:
        missing = free_names(parse(source))
        missing -= set(PROVIDED)
        assert not missing, f"{name} uses names it neither defines nor imports: {sorted(missing)}"
        asyncio.run(run_fragment(source, name))
    if what != "pytest" and _REQUESTS.search(source):
        assert routed.count() > before, f"{name} sent no request to the local server"


def test_blocks_are_found() -> None:
    """The extraction sees the README's blocks: the quickstart first, headings attached."""
    assert len(BLOCKS) >= 15
    assert BLOCKS[0].id == "quickstart-1" and "asyncio.run(main())" in BLOCKS[0].source
    assert len({b.id for b in BLOCKS}) == len(BLOCKS)


def test_a_broken_block_fails(routed: MockServer) -> None:
    """The runner is not vacuous: a wrong name, or a request the server refuses, fails."""
    with pytest.raises(AttributeError):
        asyncio.run(run_fragment("rh.NoSuchLayer()\n", "<broken>"))
    with pytest.raises(aiohttp.ClientResponseError):
        asyncio.run(run_fragment(
            "async with session.get('http://api.example.com/nowhere') as r:\n"
            "    r.raise_for_status()\n", "<404>"))
