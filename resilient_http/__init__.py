"""resilient_http: resilience layers for aiohttp as native client middlewares.

Placeholder created on branch ``mock`` so that the package type-checks; the lead's version
(with the public ``__all__``) replaces it.
"""

__all__: list[str] = []
