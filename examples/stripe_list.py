"""List Stripe customers with the ``has_more`` / ``starting_after`` cursor.

    STRIPE_API_KEY=sk_test_... python examples/stripe_list.py --domain example.com

``rh.presets.stripe()`` asks for ``limit`` items a page and, while ``has_more`` is true,
the next page ``starting_after`` the id of the last customer; every page goes through the
retry, circuit breaker and rate limit of ``rh.standard()``.

The API base URL: ``--base-url``, else ``$STRIPE_API_BASE``, else https://api.stripe.com.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

import aiohttp

import resilient_http as rh


async def list_customers(args: argparse.Namespace) -> int:
    key = os.environ.get("STRIPE_API_KEY", "sk_test_placeholder")
    url = f"{args.base_url.rstrip('/')}/v1/customers"
    by_domain: dict[str, int] = {}
    async with aiohttp.ClientSession(middlewares=rh.standard(rate=25)) as session:
        customers = rh.paginate(session, url, rh.presets.stripe(page_size=args.limit),
                                max_items=args.max_items,
                                headers={"Authorization": f"Bearer {key}"})
        async for customer in customers:
            print(f"{customer['id']}  {customer['email']}")
            domain = customer["email"].rpartition("@")[2]
            by_domain[domain] = by_domain.get(domain, 0) + 1
    total = sum(by_domain.values())
    print(f"{total} customers: " + ", ".join(f"{n} at {d}" for d, n in sorted(by_domain.items())))
    if args.domain:
        print(f"{by_domain.get(args.domain, 0)} at {args.domain}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=100, help="page size, 1 to 100")
    parser.add_argument("--max-items", type=int, help="stop after this many customers")
    parser.add_argument("--domain", help="also count the customers at this email domain")
    parser.add_argument("--base-url",
                        default=os.environ.get("STRIPE_API_BASE", "https://api.stripe.com"))
    return asyncio.run(list_customers(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
