"""Every credential carrier x every place it could leak, over real loopback servers.

Carriers: the credential headers APIs use, ``cookies=`` per request, the session's cookie
jar, ``auth=``, user info in the URL, credential query parameters (and a fragment, for logs).
Places: the cache across callers, pagination across origins and redirects, log lines and
events. A secret is looked for as sent, and base64-encoded inside ``Authorization: Basic``.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from yarl import URL

import resilient_http as rh
from resilient_http.events import Event, redact_url
from resilient_http.testing import MockServer, RecordedRequest, Reply

ALICE, BOB = "S3CR3T-alice-1a", "S3CR3T-bob-2b"
HEADERS = [
    "PRIVATE-TOKEN", "X-Shopify-Access-Token", "DD-API-KEY", "Ocp-Apim-Subscription-Key",
    "X-API-Token", "X-Vault-Token", "Authorization",
]
QUERY = ["api_key", "token", "X-Goog-Signature"]
# Every name of the OpenTelemetry list and ours, in logs and events.
LOGGED_QUERY = [
    *QUERY, "AWSAccessKeyId", "Signature", "sig", "X-Amz-Signature", "X-Amz-Credential",
    "X-Amz-Security-Token", "X-Goog-Credential", "jwt", "session_id", "private_key",
    "subscription-key", "access_token", "client_secret", "password",
]


@dataclass(frozen=True)
class Carrier:
    """How a caller carries ``secret`` on a request to ``url`` made with ``session``."""

    name: str
    apply: Callable[[str, URL, aiohttp.ClientSession], tuple[URL, dict[str, Any]]]
    per_request: bool = True  # False: the session's, which aiohttp sends (see paginate())

    def __repr__(self) -> str:
        return self.name


def _header(name: str) -> Carrier:
    return Carrier(f"header:{name}", lambda s, u, _: (u, {"headers": {name: s}}))


def _query(name: str) -> Carrier:
    return Carrier(f"query:{name}", lambda s, u, _: (u.update_query({name: s}), {}))


def _jar(secret: str, url: URL, session: aiohttp.ClientSession) -> tuple[URL, dict[str, Any]]:
    session.cookie_jar.update_cookies({"sid": secret}, response_url=url.origin())
    return url, {}


COOKIES = Carrier("cookies", lambda s, u, _: (u, {"cookies": {"sid": s}}))
JAR = Carrier("cookie-jar", _jar, per_request=False)
AUTH = Carrier("auth", lambda s, u, _: (u, {"auth": aiohttp.BasicAuth("user", s)}))
USERINFO = Carrier("userinfo", lambda s, u, _: (u.with_user("user").with_password(s), {}))
FRAGMENT = Carrier("fragment", lambda s, u, _: (u.with_fragment(f"access_token={s}"), {}))

CARRIERS = [
    *map(_header, HEADERS), COOKIES, JAR, AUTH, USERINFO, *map(_query, QUERY),
]
# auth= is deprecated since aiohttp 3.14 (still what users pass, and what older ones take).
_AUTH_WARNS = pytest.mark.filterwarnings(
    "ignore:(BasicAuth|The 'auth' parameter) is deprecated:DeprecationWarning"
)


def params(carriers: list[Carrier]) -> list[Any]:
    return [pytest.param(c, id=c.name, marks=_AUTH_WARNS if c is AUTH else ()) for c in carriers]


def _session(cache: rh.Cache | None = None) -> aiohttp.ClientSession:
    middlewares = (cache,) if cache is not None else ()
    return aiohttp.ClientSession(middlewares=middlewares, cookie_jar=aiohttp.CookieJar(unsafe=True))


def traces(secret: str) -> list[str]:
    basic = base64.b64encode(f"user:{secret}".encode()).decode()
    return [secret, quote(secret, safe=""), basic]


def seen(text: str, secret: str) -> bool:
    return any(t in text for t in traces(secret))


def dump(request: RecordedRequest) -> str:
    return f"{request.url} {list(request.headers.items())!r} {request.text()}"


# --------------------------------------------------------------------------- cache


@pytest.mark.parametrize("carrier", params(CARRIERS))
async def test_cache_never_serves_a_response_across_callers(
    carrier: Carrier, mock_server: MockServer
) -> None:
    mock_server.cacheable("/r", b"private to its caller", cache_control="max-age=600")
    cache = rh.Cache()
    # (caller, reaches the server): a new caller always does; a caller seen before is a hit.
    for secret, upstream in [
        (ALICE, True), (None, True), (BOB, True), (ALICE, False), (None, False), (BOB, False),
    ]:
        async with _session(cache) as session:
            url, kwargs = mock_server.url("/r"), {}
            if secret is not None:
                url, kwargs = carrier.apply(secret, url, session)
            before = mock_server.count("/r")
            async with session.get(url, **kwargs) as resp:
                assert await resp.read() == b"private to its caller"
        assert (mock_server.count("/r") > before) == upstream, (secret, upstream)
        if upstream and secret is not None:  # the carrier really carried it
            assert seen(dump(mock_server.requests_for("/r")[-1]), secret)
    await cache.close()


# --------------------------------------------------------------------------- pagination

ROUTES = ["first-page-redirect", "next-link", "next-page-redirect"]


def _script(route: str, home: MockServer, away: MockServer) -> None:
    away.script("/x", Reply(json=["leaked"]))
    foreign = str(away.url("/x"))
    if route == "first-page-redirect":
        home.script("/first", Reply(302, headers={"Location": foreign}))
    elif route == "next-link":
        home.script("/first", Reply(json=["a"], headers={"Link": f'<{foreign}>; rel="next"'}))
    else:
        home.script("/first", Reply(json=["a"], headers={"Link": '</second>; rel="next"'}))
        home.script("/second", Reply(307, headers={"Location": foreign}))


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("carrier", params(CARRIERS))
async def test_pagination_refuses_another_origin(
    carrier: Carrier, route: str, mock_server: MockServer, mock_server_factory: Any
) -> None:
    away = await mock_server_factory()
    _script(route, mock_server, away)
    got: list[str] = []
    async with _session() as session:
        url, kwargs = carrier.apply(ALICE, mock_server.url("/first"), session)
        with pytest.raises(rh.PaginationError, match="another origin") as info:
            async for item in rh.paginate(session, url, rh.LinkHeader(), **kwargs):
                got.append(item)
    assert got == ([] if route == "first-page-redirect" else ["a"])
    assert away.count() == 0  # nothing at all went there
    assert not seen(str(info.value), ALICE)
    assert seen(dump(mock_server.requests_for("/first")[0]), ALICE)


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("carrier", params([c for c in CARRIERS if c.per_request]))
async def test_pagination_allowed_across_origins_strips_credentials(
    carrier: Carrier, route: str, mock_server: MockServer, mock_server_factory: Any
) -> None:
    away = await mock_server_factory()
    _script(route, mock_server, away)
    async with _session() as session:
        url, kwargs = carrier.apply(ALICE, mock_server.url("/first"), session)
        kwargs.setdefault("headers", {})["Accept"] = "application/json"
        got = [
            item async for item in rh.paginate(
                session, url, rh.LinkHeader(), allow_cross_origin=True, **kwargs
            )
        ]
    assert got == (["leaked"] if route == "first-page-redirect" else ["a", "leaked"])
    [foreign] = away.requests_for("/x")
    assert not seen(dump(foreign), ALICE)
    assert foreign.headers["Accept"] == "application/json"  # the rest of the request stays
    assert seen(dump(mock_server.requests_for("/first")[0]), ALICE)


# --------------------------------------------------------------------------- logs, events

LOGGED = [*CARRIERS, *map(_query, LOGGED_QUERY[len(QUERY):]), FRAGMENT]


@pytest.mark.parametrize("place", ["logs", "events"])
@pytest.mark.parametrize("carrier", params(LOGGED))
async def test_logs_and_events_never_show_a_credential(
    carrier: Carrier, place: str, mock_server: MockServer, caplog: pytest.LogCaptureFixture
) -> None:
    mock_server.fail_then_succeed("/flaky", failures=1, status=503, headers={"Retry-After": "0"})
    events: list[Event] = []
    layers = rh.standard(
        fields=rh.FieldMask(["id"], on_event=events.append),
        cache=rh.Cache(on_event=events.append),
        retry=rh.Retry(attempts=2, on_event=events.append),
    )
    with caplog.at_level(logging.DEBUG, logger="resilient_http"):
        async with aiohttp.ClientSession(
            middlewares=layers, cookie_jar=aiohttp.CookieJar(unsafe=True)
        ) as session:
            url, kwargs = carrier.apply(ALICE, mock_server.url("/flaky"), session)
            async with session.get(url, **kwargs) as resp:
                assert resp.status == 200
    names = {e.name for e in events}
    assert {"fieldmask.applied", "cache.miss", "retry.scheduled"} <= names
    shown = caplog.text if place == "logs" else repr(events)
    assert "retry.scheduled" in shown and "/flaky" in shown
    assert not seen(shown, ALICE)


# --------------------------------------------------------------------------- redact_url

_SECRET = st.text(min_size=0, max_size=12).map(lambda s: "S3CR3T" + s)
_PLAIN = st.text(alphabet="abcdefghij0123456789-._~", min_size=1, max_size=8)
_BENIGN_NAMES = st.sampled_from(["q", "page", "limit", "fields", "sort", "x"])


@st.composite
def _url_with_secrets(draw: st.DrawFn) -> str:
    enc = lambda s: quote(s, safe="")  # noqa: E731
    scheme = draw(st.sampled_from(["http", "https", "HTTPS", "ftp"]))
    userinfo = draw(st.sampled_from(["", "user", "pw", "both", "empty-user"]))
    user = {"user": enc(draw(_SECRET)), "both": enc(draw(_SECRET)), "pw": "u"}.get(userinfo, "")
    password = {"pw": enc(draw(_SECRET)), "both": enc(draw(_SECRET)),
                "empty-user": enc(draw(_SECRET))}.get(userinfo)
    auth = "" if not userinfo else (f"{user}:{password}@" if password else f"{user}@")
    host = draw(_PLAIN) + draw(st.sampled_from(["", ":8080"]))
    path = "/".join(draw(st.lists(_PLAIN, max_size=3)))
    pairs = []
    for _ in range(draw(st.integers(0, 5))):
        if draw(st.booleans()):
            name = draw(st.sampled_from(LOGGED_QUERY))
            name = draw(st.sampled_from([name, name.upper(), name.lower(), enc(name),
                                         "".join(f"%{ord(c):02X}" for c in name)]))
            pairs.append(f"{name}={enc(draw(_SECRET))}")
        else:
            pairs.append(f"{draw(_BENIGN_NAMES)}={draw(_PLAIN)}")
    sep = draw(st.sampled_from(["&", ";"]))
    query = ("?" + sep.join(pairs)) if pairs or draw(st.booleans()) else ""
    fragment = draw(st.sampled_from(["", "#" + enc(draw(_SECRET)), "#access_token=S3CR3T"]))
    return f"{scheme}://{auth}{host}/{path}{query}{fragment}"


@settings(max_examples=500, deadline=None)
@given(_url_with_secrets())
def test_redact_url_never_shows_a_secret_in_any_position(url: str) -> None:
    assert "S3CR3T" not in redact_url(url)
    try:
        parsed = URL(url)
    except ValueError:
        return
    assert "S3CR3T" not in redact_url(parsed)
