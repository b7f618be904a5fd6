"""Share one rate limit between a user's chat and a background batch job.

    OPENAI_API_KEY=sk-... python examples/llm_chat_and_batch.py --rate 5 --batch 100

A batch of embedding requests (``rh.priority("background")``) and a few chat requests
(``rh.priority("urgent")``) go through the same ``rh.RateLimit``: the chat requests take the
next token ahead of every waiting batch request, so they stay fast while the batch uses the
rest of the rate (background still gets at least one token in five). ``--no-priority``
sends both at the same (normal) priority: the chat then waits behind the batch, first in,
first out.

A small middleware after the stack notes the order in which the limiter let requests go.
The API base URL: ``--base-url``, else ``$OPENAI_BASE_URL``, else https://api.openai.com.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Awaitable, Callable

import aiohttp

import resilient_http as rh

Handler = Callable[[aiohttp.ClientRequest], Awaitable[aiohttp.ClientResponse]]


async def run(args: argparse.Namespace) -> int:
    base = args.base_url.rstrip("/")
    sent: list[str] = []  # "chat" / "batch", in the order the limiter let them go

    async def note_order(
        request: aiohttp.ClientRequest, handler: Handler
    ) -> aiohttp.ClientResponse:
        sent.append("chat" if request.url.path.endswith("/chat/completions") else "batch")
        return await handler(request)

    headers = {}
    if key := os.environ.get("OPENAI_API_KEY"):
        headers["Authorization"] = f"Bearer {key}"
    limit = rh.RateLimit(args.rate, burst=1)  # one limit for everything this process sends
    middlewares = (*rh.standard(rate=limit), note_order)

    def level(name: str) -> contextlib.AbstractContextManager[object]:
        return rh.priority(name) if args.priority else contextlib.nullcontext()

    async with aiohttp.ClientSession(headers=headers, middlewares=middlewares) as session:

        async def embed(text: str) -> None:
            with level("background"):
                async with session.post(f"{base}/v1/embeddings", json={
                    "model": "text-embedding-3-small", "input": text,
                }) as resp:
                    resp.raise_for_status()
                    await resp.read()

        async def chat(question: str) -> tuple[float, int]:
            """Ask; return the latency and how many batch requests went ahead."""
            before, start = len(sent), time.perf_counter()
            with level("urgent"):
                async with session.post(f"{base}/v1/chat/completions", json={
                    "model": "gpt-4o-mini", "messages": [{"role": "user", "content": question}],
                }) as resp:
                    resp.raise_for_status()
                    answer = (await resp.json())["choices"][0]["message"]["content"]
            ahead = sent[before:sent.index("chat", before)].count("batch")
            latency = time.perf_counter() - start
            print(f"chat: {answer!r} in {latency * 1000:.0f} ms, "
                  f"{ahead} batch request(s) went ahead")
            return latency, ahead

        started = time.perf_counter()
        batch = asyncio.ensure_future(
            asyncio.gather(*(embed(f"document {n}") for n in range(args.batch)))
        )
        await asyncio.sleep(2 / args.rate)  # the batch is under way, most of it waiting
        chats = []
        for n in range(args.chats):
            chats.append(await chat(f"question {n + 1}"))
            await asyncio.sleep(1 / args.rate)  # the user reads the answer
        await batch
        elapsed = time.perf_counter() - started
    print(f"sent: {sent.count('batch')} batch, {sent.count('chat')} chat")
    worst = max(latency for latency, _ in chats)
    print(f"chat latency: worst {worst * 1000:.0f} ms (one token every "
          f"{1000 / args.rate:.0f} ms); batch of {args.batch} done in {elapsed:.2f} s")
    print(f"batch requests ahead of each chat: {[ahead for _, ahead in chats]}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=5.0, help="requests per second")
    parser.add_argument("--batch", type=int, default=40, help="embedding requests")
    parser.add_argument("--chats", type=int, default=5, help="chat requests")
    parser.add_argument("--no-priority", dest="priority", action="store_false",
                        help="send the chat at normal priority, to compare")
    parser.add_argument("--base-url",
                        default=os.environ.get("OPENAI_BASE_URL", "https://api.openai.com"))
    return asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
