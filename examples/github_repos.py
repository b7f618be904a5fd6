"""List a GitHub organisation's repositories, page by page, within GitHub's rate limit.

    GITHUB_TOKEN=ghp_... python examples/github_repos.py aio-libs

``rh.paginate`` follows the ``Link: <…>; rel="next"`` header (``rh.presets.github()``); the
``RateLimit`` layer reads ``X-RateLimit-Remaining`` / ``X-RateLimit-Reset`` on every page and,
when the quota is spent, holds the next request until the reset instead of getting a 403.

The API base URL: ``--base-url``, else ``$GITHUB_API_URL``, else https://api.github.com.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

import aiohttp

import resilient_http as rh


async def list_repos(org: str, base_url: str, per_page: int) -> int:
    waited: list[float] = []

    def on_event(event: rh.Event) -> None:
        if event.name == "ratelimit.waited":
            waited.append(event.detail["seconds"])

    headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
    if token := os.environ.get("GITHUB_TOKEN"):
        headers["Authorization"] = f"Bearer {token}"
    # 10 requests/s at most; fewer when GitHub's headers say the quota is running out
    rate = rh.RateLimit(10, on_event=on_event)
    count = 0
    async with aiohttp.ClientSession(headers=headers, middlewares=rh.standard(rate=rate)) as s:
        url = f"{base_url.rstrip('/')}/orgs/{org}/repos"
        async for page in rh.paginate(s, url, rh.presets.github(page_size=per_page)).pages():
            left = page.headers.get("X-RateLimit-Remaining")
            print(f"page {page.number}: {len(page.items)} repositories "
                  f"(rate limit: {left} of {page.headers.get('X-RateLimit-Limit')} left)")
            for repo in page.items:
                archived = "  (archived)" if repo["archived"] else ""
                print(f"  {repo['full_name']:40} {repo['stargazers_count']:6} stars{archived}")
                count += 1
    print(f"{count} repositories")
    if waited:
        print(f"waited {sum(waited):.1f} s for the rate limit to reset")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("org")
    parser.add_argument("--per-page", type=int, default=100, help="1 to 100 (default 100)")
    parser.add_argument("--base-url",
                        default=os.environ.get("GITHUB_API_URL", "https://api.github.com"))
    args = parser.parse_args(argv)
    return asyncio.run(list_repos(args.org, args.base_url, args.per_page))


if __name__ == "__main__":
    sys.exit(main())
