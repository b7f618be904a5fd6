"""Fuzz of the parsers of user and page text: ``FieldMask`` field lists, redaction
(``redact_url`` / ``redact_headers``), pagination strategies over random JSON pages and the
items finder, and the polling status reader."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from _gen import hostile, json_values
from _profiles import FUZZ
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from resilient_http import FieldMask, JobSpec
from resilient_http.events import REDACTED, redact_headers, redact_url
from resilient_http.fieldmask import _mask_url
from resilient_http.pagination import _auto_items
from resilient_http.strategies import (
    BodyLink,
    Cursor,
    LinkHeader,
    Offset,
    Page,
    PageNumber,
    PageToken,
)

# --------------------------------------------------------------------------- FieldMask

names = st.one_of(st.just("*"), st.text("abcXYZ019_-", min_size=1, max_size=6))


def _field_exprs(depth: int = 2) -> st.SearchStrategy[str]:
    """``field ("," field)*`` with ``field = path ["(" list ")"]``, ``path = name (("."|"/")
    name)*`` (FieldMask's grammar)."""
    path = st.tuples(names, st.lists(st.tuples(st.sampled_from("./"), names), max_size=2)).map(
        lambda t: t[0] + "".join(sep + name for sep, name in t[1])
    )
    if depth == 0:
        return path
    sub = st.lists(_field_exprs(depth - 1), min_size=1, max_size=3).map(",".join)
    return st.one_of(path, st.tuples(path, sub).map(lambda t: f"{t[0]}({t[1]})"))


@FUZZ
@given(st.lists(_field_exprs(), min_size=1, max_size=4))
def test_valid_field_lists_are_accepted_and_sent_verbatim(fields: list[str]) -> None:
    mask = FieldMask(fields)
    masked = _mask_url(URL("http://api.example/v1/items?x=1"), mask._value)
    assert masked is not None
    assert masked.query.getall("fields") == [",".join(fields)]
    assert masked.query["x"] == "1"


@FUZZ
@given(st.one_of(hostile(), st.lists(hostile(), max_size=4),
                 st.dictionaries(hostile(), st.lists(hostile(), max_size=3), max_size=3)),
       st.sampled_from(["query", "header", "jsonapi"]), st.booleans())
def test_field_mask_accepts_or_names_the_problem(fields: Any, style: str, validate: bool
                                                 ) -> None:
    try:
        mask = FieldMask(fields, style=style, validate=validate)
    except (ValueError, TypeError) as exc:
        assert str(exc)
        return
    if style != "header":
        masked = _mask_url(URL("http://api.example/v1/items?x=1"), mask._value)
        assert masked is not None
        # a field name never adds a parameter: only x and the mask's own names
        assert set(masked.query) - {"x"} == {name for name, _ in mask._value}


def test_deeply_nested_field_mask() -> None:
    with pytest.raises(ValueError):
        FieldMask(["a(" * 5000 + "b" + ")" * 5000 + "("])


# --------------------------------------------------------------------------- redaction

SECRET_NAMES = [
    "token", "access_token", "api_key", "apikey", "client_secret", "password",
    "X-Amz-Signature", "X-Amz-Credential", "sig", "Authorization", "Cookie", "X-Api-Key",
]
secret_names = st.sampled_from(SECRET_NAMES)
PLAIN_NAMES = ["page", "q", "per_page", "Accept", "X-Title", "sort"]
plain_names = st.sampled_from(PLAIN_NAMES)


def _marker(n: int) -> str:
    return f"S3cr3t{n}Z"


@FUZZ
@given(
    st.lists(st.one_of(secret_names, plain_names), max_size=6),
    st.booleans(),
    st.sampled_from(["http://api.example/v1", "https://[::1]:8443/p", "http://127.0.0.1:1/"]),
)
def test_redact_url_hides_every_secret(query: list[str], user: bool, base: str) -> None:
    url = URL(base).with_query([(k, _marker(n)) for n, k in enumerate(query)])
    if user:
        url = url.with_user("alice").with_password(_marker(-1))
    for candidate in (url, str(url)):
        out = redact_url(candidate)
        assert isinstance(out, str)
        assert _marker(-1) not in out
        for n, k in enumerate(query):
            if k in SECRET_NAMES:
                assert _marker(n) not in out
            else:
                assert _marker(n) in out


@FUZZ
@given(hostile())
def test_redact_url_never_raises(text: str) -> None:
    assert isinstance(redact_url(text), str)


@pytest.mark.parametrize("text", ["http://[::1", "http://x:99999999/", "http://x:-1/"])
def test_redact_url_never_raises_on_invalid_urls(text: str) -> None:
    assert isinstance(redact_url(text), str)


@pytest.mark.parametrize(
    "name",
    ["X-Goog-Signature", "X-Goog-Credential", "jwt", "session_id", "private_key",
     "subscription-key"],
)
def test_redaction_knows_more_credential_names(name: str) -> None:
    assert redact_headers([(name, "v")])[name] == REDACTED
    assert "S3cr3t" not in redact_url(URL("http://x/").with_query({name: "S3cr3t"}))


def test_redact_url_drops_the_fragment() -> None:
    assert "S3cr3t" not in redact_url("http://x/cb#access_token=S3cr3t")


@FUZZ
@given(st.lists(st.tuples(st.one_of(secret_names, plain_names, st.text(max_size=12)),
                          st.text(max_size=12)), max_size=6),
       st.booleans())
def test_redact_headers(pairs: list[tuple[str, str]], as_multidict: bool) -> None:
    source: Any = CIMultiDict(pairs) if as_multidict else pairs
    out = redact_headers(source)
    assert isinstance(out, dict)
    assert set(out) == {k for k, _ in pairs}
    secret = {name.lower() for name in SECRET_NAMES}
    for k, v in pairs:
        if k.lower() in secret:
            assert set(out[k].split(", ")) == {REDACTED}
        elif k in PLAIN_NAMES and v:  # random names may look secret ("my_token"): not checked
            assert v in out[k]


# --------------------------------------------------------------------------- pagination

STRATEGIES = [
    LinkHeader(), BodyLink(), BodyLink(("@odata.nextLink",)), Cursor(),
    Cursor(item_field="id"), Cursor(item_field="id", has_more="has_more"),
    Cursor(field="meta.cursor", has_more="has_more"), PageToken(),
    Offset(total="total"), Offset(), PageNumber(total_pages="total_pages"), PageNumber(),
]
items = st.lists(st.one_of(json_values(4), st.fixed_dictionaries({"id": json_values(4)})),
                 max_size=4)
bodies = st.one_of(
    json_values(8),
    st.fixed_dictionaries(
        {},
        optional={
            "data": items,
            "links": st.one_of(json_values(4), st.fixed_dictionaries({"next": json_values(4)})),
            "@odata.nextLink": json_values(4),
            "next_cursor": json_values(4),
            "has_more": json_values(2),
            "meta": st.fixed_dictionaries({"cursor": json_values(4)}),
            "nextPageToken": json_values(4),
            "total": json_values(2),
            "total_pages": json_values(2),
            "more": items,
        },
    ),
)
query_values = st.one_of(hostile(), st.integers(-(10**6), 10**6).map(str))


@FUZZ
@given(bodies, st.dictionaries(st.sampled_from(["offset", "page", "limit"]), query_values,
                               max_size=2),
       st.lists(hostile(), max_size=2))
def test_strategies_return_a_next_page_or_raise_value_error(
    body: Any, query: dict[str, str], links: list[str]
) -> None:
    try:
        found = _auto_items(body)
    except ValueError:
        found = []
    assert isinstance(found, list)
    headers = CIMultiDictProxy(CIMultiDict([("Link", v) for v in links]))
    page = Page(1, URL("http://api.example/items").with_query(query), 200, headers, body,
                found)
    for strategy in STRATEGIES:
        try:
            nxt = strategy.next(page)
        except ValueError as exc:
            assert str(exc)
            continue
        assert nxt is None or isinstance(nxt, (str, URL, Mapping)), (strategy, nxt)
        if isinstance(nxt, Mapping):
            assert all(isinstance(v, (str, int)) and not isinstance(v, bool)
                       for v in nxt.values())


# --------------------------------------------------------------------------- polling


job_bodies = st.one_of(
    json_values(6),
    st.fixed_dictionaries({}, optional={
        "status": json_values(4),
        "metadata": st.fixed_dictionaries({}, optional={"state": json_values(4)}),
        "a.b": json_values(4),
    }),
)


@FUZZ
@given(job_bodies, st.sampled_from(["status", "metadata.state", ("a.b",)]))
def test_job_status_reader_never_raises(body: Any, path: Any) -> None:
    spec = JobSpec(status=path, done={"done", "failed"})
    assert spec._status is not None
    spec._status(body)
    assert isinstance(spec._done(body), bool)
