"""The JSON configuration of a MockServer and its ``/__control/`` endpoints.

A configuration document::

    {
      "reset": false,          # forget routes, records and counters first (default false)
      "record": false,         # switch request recording on or off (default: unchanged)
      "routes": [
        {"path": "/flaky", "method": "GET",
         "script": [503, {"status": 200, "json": {"id": 1}}], "repeat_last": true},
        {"path": "/retry", "fail_then_succeed": {"failures": 2, "status": 503}},
        {"path": "/limited", "rate_limited": {"rate": 10, "per": 1.0}},
        {"path": "/chaos", "random_faults": {"error_ratio": 0.1, "latency": [0.001, 0.01]}},
        {"path": "/c", "cacheable": {"body": "hello", "etag": "v1", "cache_control": "max-age=60"}},
        {"path": "/limited", "set_rate": {"rate": null}},
        {"path": "/down", "outage": {"start": 1.0, "end": 3.0, "status": 503}}
      ]
    }

Route options take the keyword arguments of the :class:`MockServer` method of the same name;
a reply is a status int or an object of :class:`Reply` arguments (``drip`` as a list).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.web_request import BaseRequest

from resilient_http.testing._routes import reply_from_config

if TYPE_CHECKING:
    from resilient_http.testing.server import MockServer

__all__ = ["apply", "control"]

_ACTION_KEYS = {"script", "fail_then_succeed", "random_faults", "cacheable", "rate_limited",
                "set_rate", "outage"}
_ROUTE_KEYS = {"path", "method", "repeat_last", *_ACTION_KEYS}


def _options(where: str, value: object) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise TypeError(f"{where} must be an object of options, got {value!r}")
    return dict(value)


def apply(server: MockServer, config: Mapping[str, Any]) -> None:
    """Apply a configuration document to ``server`` (see the module docstring).

    Raises ``TypeError`` or ``ValueError`` naming the offending entry; entries before it
    are already applied.
    """
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be an object, got {config!r}")
    unknown = set(config) - {"reset", "record", "routes"}
    if unknown:
        raise ValueError(f"unknown config key(s): {', '.join(sorted(unknown))}")
    if config.get("reset"):
        server.reset()
    if "record" in config:
        if not isinstance(config["record"], bool):
            raise TypeError(f"record must be a bool, got {config['record']!r}")
        server.record = config["record"]
    routes = config.get("routes", [])
    if not isinstance(routes, list):
        raise TypeError(f"routes must be a list, got {routes!r}")
    for index, entry in enumerate(routes):
        where = f"routes[{index}]"
        entry = _options(where, entry)
        unknown = set(entry) - _ROUTE_KEYS
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        path, method = entry.get("path"), entry.get("method")
        if not isinstance(path, str):
            raise TypeError(f"{where}.path must be a str, got {path!r}")
        if not set(entry) & _ACTION_KEYS:
            raise ValueError(f"{where} ({path}): give one or more of "
                             f"{', '.join(sorted(_ACTION_KEYS))}")
        try:
            _apply_route(server, path, method, entry)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{where} ({path}): {exc}") from None


def _apply_route(server: MockServer, path: str, method: Any, entry: dict[str, Any]) -> None:
    if "script" in entry:
        script = entry["script"]
        if not isinstance(script, list):
            raise TypeError(f"script must be a list of replies, got {script!r}")
        replies = [reply_from_config(f"script[{i}]", r) for i, r in enumerate(script)]
        server.script(path, *replies, method=method, repeat_last=entry.get("repeat_last", True))
    if "fail_then_succeed" in entry:
        options = _options("fail_then_succeed", entry["fail_then_succeed"])
        if "success" in options:
            options["success"] = reply_from_config("success", options["success"])
        server.fail_then_succeed(path, method=method, **options)
    if "random_faults" in entry:
        options = _options("random_faults", entry["random_faults"])
        for name in ("latency", "tail_latency"):
            if isinstance(options.get(name), list):
                options[name] = tuple(options[name])
        if "success" in options:
            options["success"] = reply_from_config("success", options["success"])
        server.random_faults(path, method=method, **options)
    if "cacheable" in entry:
        options = _options("cacheable", entry["cacheable"])
        if "body" not in options:
            raise TypeError("cacheable needs a body")
        server.cacheable(path, method=method, **options)
    if "rate_limited" in entry:
        server.rate_limited(path, method=method, **_options("rate_limited", entry["rate_limited"]))
    if "outage" in entry:  # after the replies: seconds count from when it is applied
        server.outage(path, method=method, **_options("outage", entry["outage"]))
    if "set_rate" in entry:
        options = _options("set_rate", entry["set_rate"])
        if "rate" not in options:
            raise TypeError("set_rate needs a rate (null lifts the limit)")
        server.set_rate(path, options.pop("rate"), method=method, **options)


async def control(server: MockServer, request: BaseRequest) -> web.StreamResponse:
    """Serve ``/__control/configure`` (POST), ``stats`` (GET), ``reset`` and ``clear`` (POST)."""
    action = request.path.removeprefix("/__control/")
    if action == "stats" and request.method == "GET":
        return web.json_response(server.stats())
    if request.method != "POST":
        return web.json_response({"error": f"no control {request.method} {request.path}"},
                                 status=404 if action not in _ACTIONS else 405)
    if action == "configure":
        try:
            config = json.loads(await request.read() or b"{}")
            apply(server, config)
        except (TypeError, ValueError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"ok": True})
    if action == "reset":
        server.reset()
        return web.json_response({"ok": True})
    if action == "clear":
        server.clear()
        return web.json_response({"ok": True})
    return web.json_response({"error": f"no control {request.path}"}, status=404)


_ACTIONS = {"stats", "configure", "reset", "clear"}
