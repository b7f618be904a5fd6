"""A stand-in for a Stripe list endpoint, ``GET /v1/customers``: ``limit`` (1 to 100, default
10), ``starting_after=<id>`` as the cursor, ``has_more``, items in ``data``, newest first;
``email=`` filters. Requests need a key (``Authorization: Bearer sk_…`` or basic auth).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

__all__ = ["StripeAPI"]


@dataclass
class StripeAPI:
    """A list of customers; :meth:`app` serves it.

    Attributes:
        customers: how many (default 23), ``cus_0023`` (newest) … ``cus_0001``; every third
            one's email is at ``example.org``, the others at ``example.com``.
        cursors: the ``starting_after`` of every request served (``None`` for the first page).
    """

    customers: int = 23
    cursors: list[str | None] = field(default_factory=list)

    def app(self) -> web.Application:
        """A new ``web.Application`` serving this state."""
        app = web.Application()
        app.router.add_get("/v1/customers", self._list)
        return app

    def _all(self) -> list[dict[str, Any]]:
        return [
            {"id": f"cus_{n:04d}", "object": "customer", "created": 1_700_000_000 + n,
             "email": f"user{n}@example.{'org' if n % 3 == 0 else 'com'}"}
            for n in range(self.customers, 0, -1)
        ]

    async def _list(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith(("Bearer sk_", "Basic ")):
            return _error(401, "You did not provide an API key.")
        try:
            limit = int(request.query.get("limit", "10"))
        except ValueError:
            limit = 0
        if not 1 <= limit <= 100:
            return _error(400, "limit must be an integer between 1 and 100")
        items = self._all()
        if email := request.query.get("email"):
            items = [c for c in items if c["email"] == email]
        cursor = request.query.get("starting_after")
        self.cursors.append(cursor)
        start = 0
        if cursor is not None:
            ids = [c["id"] for c in items]
            if cursor not in ids:
                return _error(400, f"No such customer: '{cursor}'")
            start = ids.index(cursor) + 1
        page = items[start:start + limit]
        return web.json_response({"object": "list", "url": "/v1/customers", "data": page,
                                  "has_more": start + limit < len(items)})


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": {"type": "invalid_request_error", "message": message}},
                             status=status)
