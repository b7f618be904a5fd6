"""The credential predicate, its registry, cache owners, key_headers, and redact_url on
hostile input."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

import resilient_http as rh
from resilient_http import credentials
from resilient_http.events import REDACTED, redact_url
from resilient_http.testing import MockServer

CREDENTIALS = [
    # headers of the field (GitLab, Shopify, Datadog, Azure APIM, Vault, …)
    "Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie", "X-Api-Key",
    "PRIVATE-TOKEN", "X-Shopify-Access-Token", "DD-API-KEY", "DD-APPLICATION-KEY",
    "Ocp-Apim-Subscription-Key", "X-API-Token", "X-Vault-Token", "X-Auth-Token",
    "X-CSRF-Token", "X-Goog-Api-Key", "OpenAI-Api-Key", "X-Session-Id",
    # the OpenTelemetry list
    "AWSAccessKeyId", "Signature", "sig", "X-Amz-Signature", "X-Amz-Credential",
    "X-Amz-Security-Token", "X-Goog-Signature", "X-Goog-Credential",
    # query parameters
    "api_key", "apikey", "access_token", "refresh_token", "client_secret", "token", "key",
    "password", "passwd", "pwd", "pass", "jwt", "session_id", "private_key",
    "subscription-key", "code", "url_sig", "X-SIG", "otp", "SESSION",
]

NOT_CREDENTIALS = [
    "Accept", "Accept-Encoding", "Accept-Language", "Cache-Control", "Content-Type",
    "Content-Length", "If-None-Match", "If-Modified-Since", "Keep-Alive", "User-Agent",
    "Host", "Range", "Referer", "Origin", "Pragma", "traceparent", "tracestate", "baggage",
    "X-Request-Id", "Idempotency-Key", "X-Idempotency-Key", "Sec-WebSocket-Key",
    "q", "page", "limit", "fields", "signal", "passenger", "design", "zipcode", "country_code",
]


@pytest.fixture
def restore_registry() -> Iterator[None]:
    saved = credentials._added
    yield
    credentials._added = saved
    credentials._memo.clear()
    credentials._safe.clear()


@pytest.mark.parametrize("name", CREDENTIALS)
def test_credential_names_match_in_any_case(name: str) -> None:
    assert credentials.is_credential(name)
    assert credentials.is_credential(name.upper()) and credentials.is_credential(name.lower())


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_the_predicate_takes_any_text(name: str) -> None:
    assert credentials.is_credential(name) in (True, False)


def test_a_camel_case_boundary_splits_words() -> None:
    assert credentials.is_credential("urlSig") and credentials.is_credential("userPwd")
    assert not credentials.is_credential("urlsig")  # one word: not "sig"


@pytest.mark.parametrize("name", NOT_CREDENTIALS)
def test_ordinary_names_do_not_match(name: str) -> None:
    assert not credentials.is_credential(name)


def test_add_registers_names_for_redaction_and_cache_keys(restore_registry: None) -> None:
    assert not credentials.is_credential("X-Tenant")  # memoized as False first
    rh.credentials.add("X-Tenant", "customer")
    assert credentials.is_credential("x-tenant") and credentials.is_credential("X-TENANT")
    assert credentials.registered() >= {"x-tenant", "customer"}
    assert redact_url("https://h/x?customer=acme&q=1") == f"https://h/x?customer={REDACTED}&q=1"
    assert credentials.owner_of(CIMultiDict({"X-Tenant": "a"}), frozenset(), False) is not None


@pytest.mark.parametrize(
    ("names", "error", "match"),
    [((3,), TypeError, "names must be str"), (("",), ValueError, "non-empty"),
     ((" ",), ValueError, "non-empty")],
)
def test_add_validates(names: tuple[Any, ...], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        credentials.add(*names)


def test_the_memo_is_bounded() -> None:
    for i in range(credentials._MEMO_SIZE + 10):
        credentials.is_credential(f"X-Name-{i}")
    credentials.is_credential("x" * 10_000)
    assert len(credentials._memo) <= credentials._MEMO_SIZE
    assert "x" * 10_000 not in credentials._memo


def test_owner_anonymous_private_shared_and_key_headers() -> None:
    anon = CIMultiDict({"Accept": "a/b", "Host": "h"})
    alice = CIMultiDict({"PRIVATE-TOKEN": "alice"})
    bob = CIMultiDict({"private-token": "bob"})
    none: frozenset[str] = frozenset()
    assert credentials.owner_of(anon, none, False) is None
    a, b = credentials.owner_of(alice, none, False), credentials.owner_of(bob, none, False)
    assert a and b and a != b and "alice" not in a and credentials.credentialed(a)
    assert credentials.owner_of(alice, none, True) == credentials.owner_of(bob, none, True)
    tenant = frozenset({"x-tenant"})
    keyed = credentials.owner_of(CIMultiDict({"X-Tenant": "t1"}), tenant, False)
    assert keyed is not None and not credentials.credentialed(keyed)
    assert keyed != credentials.owner_of(CIMultiDict({"X-Tenant": "t2"}), tenant, False)
    assert credentials.owner_of(anon, tenant, False) is None


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [("X-Tenant", TypeError, "sequence of header names"), (3, TypeError, "sequence"),
     ([3], TypeError, "header names"), (["a b"], ValueError, "valid header names"),
     ([""], ValueError, "valid header names")],
)
def test_key_headers_are_validated(value: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=f"key_headers.*{match}"):
        rh.Cache(key_headers=value)


async def test_key_headers_split_the_cache(mock_server: MockServer) -> None:
    mock_server.cacheable("/r", b"body", cache_control="max-age=60")
    cache = rh.Cache(key_headers=["X-Tenant"])
    assert cache.key_headers == {"x-tenant"}
    async with aiohttp.ClientSession(middlewares=(cache,)) as session:
        for tenant in ("t1", "t2", "t1", "t2", None):
            headers = {"X-Tenant": tenant} if tenant else {}
            async with session.get(mock_server.url("/r"), headers=headers) as resp:
                await resp.read()
    assert [r.headers.get("X-Tenant") for r in mock_server.requests_for("/r")] == [
        "t1", "t2", None
    ]
