"""A stand-in for GitHub's ``GET /orgs/{org}/repos``: ``Link`` pagination (``per_page``,
``page``) and the primary rate limit's ``X-RateLimit-*`` headers.

Each response spends one request of a quota of ``quota`` per window and says so
(``X-RateLimit-Limit``, ``-Remaining``, ``-Used``, ``-Reset`` as epoch seconds,
``-Resource: core``). A request made with no quota left before the reset is refused as
GitHub does: 403 with ``X-RateLimit-Remaining: 0``, counted in ``refused``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from aiohttp import web

__all__ = ["GitHubAPI"]


@dataclass
class GitHubAPI:
    """An organisation's repositories behind a rate limit; :meth:`app` serves them.

    Attributes:
        org: the organisation's login (default ``"aio-libs"``); other orgs get a 404.
        repos: how many repositories it has (default 25), named ``repo-01`` …
        quota: requests per window (default 2, so a third page waits for the reset).
        window: seconds a window lasts (default 1; resets are whole epoch seconds).
        served: requests answered 200; ``refused``: requests refused for lack of quota.
    """

    org: str = "aio-libs"
    repos: int = 25
    quota: int = 2
    window: float = 1.0
    served: int = 0
    refused: int = 0
    _used: int = 0
    _reset: int = field(default=0, repr=False)

    def app(self) -> web.Application:
        """A new ``web.Application`` serving this state."""
        app = web.Application()
        app.router.add_get("/orgs/{org}/repos", self._repos)
        return app

    def _spend(self) -> dict[str, str] | None:
        """Take one request from the quota: its headers, or ``None`` when none is left."""
        now = time.time()
        if now >= self._reset - 0.05:  # a client may wake a timer's resolution early
            self._used = 0
            self._reset = math.ceil(now + self.window)
        if self._used >= self.quota:
            return None
        self._used += 1
        return {
            "X-RateLimit-Limit": str(self.quota),
            "X-RateLimit-Remaining": str(self.quota - self._used),
            "X-RateLimit-Used": str(self._used),
            "X-RateLimit-Reset": str(self._reset),
            "X-RateLimit-Resource": "core",
        }

    async def _repos(self, request: web.Request) -> web.Response:
        headers = self._spend()
        if headers is None:
            self.refused += 1
            return web.json_response(
                {"message": "API rate limit exceeded"}, status=403,
                headers={"X-RateLimit-Limit": str(self.quota), "X-RateLimit-Remaining": "0",
                         "X-RateLimit-Reset": str(self._reset)},
            )
        org = request.match_info["org"]
        if org != self.org:
            return web.json_response({"message": "Not Found"}, status=404, headers=headers)
        per_page = max(1, min(100, int(request.query.get("per_page", "30"))))
        page = max(1, int(request.query.get("page", "1")))
        last = max(1, math.ceil(self.repos / per_page))
        start = (page - 1) * per_page
        body = [
            {"id": 1000 + n, "name": f"repo-{n:02d}", "full_name": f"{org}/repo-{n:02d}",
             "stargazers_count": (n * 37) % 101, "archived": n % 7 == 0}
            for n in range(start + 1, min(start + per_page, self.repos) + 1)
        ]
        links = []
        for rel, number in (("next", page + 1), ("last", last)):
            if number <= last and not (rel == "next" and page >= last):
                url = request.url.update_query(page=str(number), per_page=str(per_page))
                links.append(f'<{url}>; rel="{rel}"')
        if links:
            headers["Link"] = ", ".join(links)
        self.served += 1
        return web.json_response(body, headers=headers)
