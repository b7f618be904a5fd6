"""How ``CircuitBreaker``'s manual control (``state``, ``isolate``, ``reset``) reads a key:
a URL (its origin), a bare ``host`` or ``host:port``, a decorated function or a custom key."""

from __future__ import annotations

import re
from typing import Any

from yarl import URL

__all__ = ["circuit_label", "canonical_origin", "host_port", "of_host"]

_HOST_PORT = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[^\s/\\:@?#\[\]%]+)(?::[0-9]{1,5})?")
"""A bare ``host`` or ``host:port`` (an IPv6 address in brackets): nothing else."""


def circuit_label(key: Any) -> str:
    """A readable name of a circuit's key (events, ``states()``)."""
    if isinstance(key, URL):
        return str(key)
    if callable(key) and hasattr(key, "__qualname__"):
        return f"{getattr(key, '__module__', '?')}.{key.__qualname__}"
    return str(key)


def canonical_origin(key: Any) -> URL | None:
    """The origin of a URL-like key with the default port left out, or ``None``."""
    if not isinstance(key, (str, URL)):
        return None
    try:
        origin = (URL(key) if isinstance(key, str) else key).origin()
    except ValueError:
        return None
    if origin.explicit_port is not None and origin.is_default_port():
        origin = origin.with_port(None)
    return origin


def host_port(key: str) -> tuple[str, int | None] | None:
    """``(host, port)`` of a bare ``"api.example.com"`` / ``"127.0.0.1:8080"`` /
    ``"[::1]:8080"`` (host lower-cased, IDNA-encoded; ``port`` ``None`` when not written),
    or ``None`` when ``key`` is not of that form."""
    if _HOST_PORT.fullmatch(key) is None:
        return None
    try:
        url = URL("//" + key)
        host, port = url.host, url.explicit_port
    except ValueError:  # a port over 65535, a host IDNA rejects
        return None
    return None if not host else (host, port)


def of_host(origin: Any, host: str, port: int | None) -> bool:
    """Whether the circuit key ``origin`` (a canonical origin URL) is on ``host`` (and on
    ``port``, the scheme's default one included, when ``port`` is given)."""
    return (
        isinstance(origin, URL)
        and origin.host == host
        and (port is None or origin.port == port)
    )
