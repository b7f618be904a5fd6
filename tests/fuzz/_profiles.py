"""Hypothesis settings for the fuzz harnesses, chosen by ``HYPOTHESIS_PROFILE``.

``make test`` runs them with the quick profile (a few hundred examples each); ``make fuzz``
sets ``HYPOTHESIS_PROFILE=fuzz`` (at least 10,000 examples per parser property, the long
soak). The profiles are applied with ``@FUZZ``/``@E2E`` on each test, never loaded globally,
so the rest of the suite keeps its own settings.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]

settings.register_profile(
    "fuzz-quick", max_examples=300, deadline=None, suppress_health_check=_QUIET
)
settings.register_profile(
    "fuzz", max_examples=10_000, deadline=None, suppress_health_check=_QUIET
)
settings.register_profile(
    "fuzz-e2e-quick", max_examples=60, deadline=None, suppress_health_check=_QUIET
)
settings.register_profile(
    "fuzz-e2e", max_examples=750, deadline=None, suppress_health_check=_QUIET
)

LONG = os.environ.get("HYPOTHESIS_PROFILE") == "fuzz"
"""Whether this is the long run (``make fuzz``)."""

FUZZ = settings.get_profile("fuzz" if LONG else "fuzz-quick")
"""For pure parser properties."""

E2E = settings.get_profile("fuzz-e2e" if LONG else "fuzz-e2e-quick")
"""For end-to-end properties that talk to a loopback server (each example is requests)."""
