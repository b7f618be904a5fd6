"""A stand-in for an LLM API: ``POST /v1/chat/completions`` and ``POST /v1/embeddings`` in
OpenAI's shapes, answering at once (``delay`` seconds later), and recording the order in
which requests arrived (``"chat"`` or ``"embeddings"``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

__all__ = ["LLMAPI"]


@dataclass
class LLMAPI:
    """A chat and embeddings API; :meth:`app` serves it.

    Attributes:
        delay: seconds before each answer (default 0).
        order: the kind of every request, in order of arrival.
    """

    delay: float = 0.0
    order: list[str] = field(default_factory=list)

    def app(self) -> web.Application:
        """A new ``web.Application`` serving this state."""
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/embeddings", self._embeddings)
        return app

    async def _arrive(self, kind: str, request: web.Request) -> Any:
        self.order.append(kind)
        body = await request.json()
        if self.delay:
            await asyncio.sleep(self.delay)
        return body

    async def _chat(self, request: web.Request) -> web.Response:
        body = await self._arrive("chat", request)
        question = body["messages"][-1]["content"]
        return web.json_response({
            "object": "chat.completion", "id": f"chatcmpl-{len(self.order)}",
            "model": body.get("model"),
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": f"You said: {question}"}}],
        })

    async def _embeddings(self, request: web.Request) -> web.Response:
        body = await self._arrive("embeddings", request)
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        return web.json_response({
            "object": "list", "model": body.get("model"),
            "data": [{"object": "embedding", "index": i, "embedding": [len(text) / 100, 0.5]}
                     for i, text in enumerate(inputs)],
        })
