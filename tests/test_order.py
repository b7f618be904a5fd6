"""A hand-built Stack in an order that breaks a guarantee warns (rh.OrderWarning)."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import pytest

import resilient_http as rh
from resilient_http._order import WORKS


@pytest.mark.parametrize(
    ("layers", "says"),
    [
        (lambda: (rh.RateLimit(10), rh.Retry()), "RateLimit is outside Retry"),
        (lambda: (rh.Timeout(30), rh.RateLimit(10), rh.Retry(), rh.Timeout(5)),
         "RateLimit is outside Retry"),
        (lambda: (rh.Retry(), rh.Cache(ttl=60)), "Cache is inside Retry"),
        (lambda: (rh.RateLimit(10), rh.Cache(ttl=60)), "Cache is inside RateLimit"),
        (lambda: (rh.Cache(ttl=60), rh.FieldMask(["id"])), "FieldMask is inside Cache"),
        (lambda: (rh.Timeout(30), rh.Timeout(10), rh.Retry()), "every Timeout is outside Retry"),
    ],
)
def test_a_wrong_order_warns_naming_the_layers_and_the_order_that_works(
    layers: Callable[[], tuple[rh.Layer, ...]], says: str
) -> None:
    made = layers()
    with pytest.warns(rh.OrderWarning) as caught:
        rh.Stack(*made)
    (warning,) = caught
    message = str(warning.message)
    assert says in message
    assert f"Stack({', '.join(type(layer).__name__ for layer in made)})" in message
    assert WORKS in message
    assert warning.filename == __file__  # points at the line that built the stack


def test_the_orders_that_work_do_not_warn() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rh.standard(fields=["id"], cache=60, rate=10)
        rh.Stack(rh.FieldMask(["id"]), rh.Cache(ttl=60), rh.Timeout(30), rh.Retry(),
                 rh.CircuitBreaker(), rh.RateLimit(10), rh.Timeout(10))
        rh.Stack(rh.Timeout(10), rh.Retry())  # one Timeout outside Retry: a total deadline
        rh.Stack(rh.Retry(), rh.Timeout(10))
        rh.Stack(rh.Timeout(30), rh.Timeout(10))  # no Retry: nothing to be per attempt
        rh.Stack(rh.RateLimit(10), rh.Timeout(10))


def test_a_stack_built_so_on_purpose_can_say_so() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", category=rh.OrderWarning)
        rh.Stack(rh.RateLimit(10), rh.Retry())
    assert issubclass(rh.OrderWarning, UserWarning)
