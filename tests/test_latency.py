"""The latency ring behind Hedge("pNN"): fixed memory, nearest-rank quantiles."""

from __future__ import annotations

import math
import random

import pytest

from resilient_http._latency import Latencies, LatencyRing, parse_quantile


def nearest_rank(data: list[float], q: float) -> float:
    ordered = sorted(data)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


@pytest.mark.parametrize("seed", range(5))
def test_quantiles_are_those_of_the_last_samples(seed: int) -> None:
    rng = random.Random(seed)
    ring = LatencyRing(64)
    seen: list[float] = []
    for _ in range(rng.randrange(1, 400)):
        value = rng.expovariate(50)
        ring.add(value)
        seen.append(value)
    kept = seen[-64:]  # the first read sorts what the ring holds
    for q in (0.5, 0.9, 0.95, 0.99):
        assert ring.quantile(q) == nearest_rank(kept, q)


def test_a_new_ring_has_no_quantile_and_the_first_samples_count_at_once() -> None:
    ring = LatencyRing(256)
    assert math.isnan(ring.quantile(0.5))
    ring.add(0.3)
    assert ring.quantile(0.95) == 0.3
    ring.add(0.1)
    assert ring.quantile(0.5) == 0.1 and ring.count == 2


def test_memory_is_fixed() -> None:
    ring = LatencyRing(32)
    for k in range(10_000):
        ring.add(k)
    assert ring.quantile(0.01) == 10_000 - 32  # the newest 32 only
    assert len(ring._ring) == 32 and len(ring._sorted) == 32


def test_keys_are_capped_oldest_first() -> None:
    lat = Latencies(size=8, max_keys=2)
    lat.ring("a").add(1)
    lat.ring("b").add(2)
    lat.ring("c").add(3)
    assert len(lat) == 2 and lat.get("a") is None and lat.get("c") is not None


@pytest.mark.parametrize(("text", "q"), [("p95", 0.95), ("p99.9", 0.999), ("p50", 0.5)])
def test_percentile_names(text: str, q: float) -> None:
    assert parse_quantile(text) == pytest.approx(q)


@pytest.mark.parametrize("text", ["95", "p0", "p100", "pnan", "p", "P95", "pinf"])
def test_bad_percentile_names(text: str) -> None:
    with pytest.raises(ValueError, match="delay must be"):
        parse_quantile(text)
