"""FieldMask: what reaches the wire, checked with MockServer's /anything echo."""

from __future__ import annotations

import string
from typing import Any

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st
from yarl import URL

import resilient_http as rh
from resilient_http import fieldmask
from resilient_http.fieldmask import _check_expr
from resilient_http.testing import FakeClock, MockServer, Reply


async def echo(session: Any, url: Any, **kwargs: Any) -> dict[str, Any]:
    async with session.get(url, **kwargs) as resp:
        assert resp.status == 200
        body: dict[str, Any] = await resp.json()
        return body


async def test_query_mask_reaches_the_wire_exactly(mock_server: MockServer) -> None:
    mask = rh.FieldMask(["id", "name", "owner.login", "items(id,name)", "a/b"])
    async with aiohttp.ClientSession(middlewares=(mask,)) as session:
        got = await echo(session, mock_server.url("/anything"), params={"q": "x"})
        assert got["args"] == {"q": "x", "fields": "id,name,owner.login,items(id,name),a/b"}
        assert got["url"] == "/anything?q=x&fields=id,name,owner.login,items(id,name),a/b"
        assert str(mock_server.requests[-1].url) == got["url"]
        # the request's own encoded query is kept byte for byte (no double encoding)
        got = await echo(session, mock_server.url("/anything"), params={"q": "a b&c%d+é"})
        assert got["args"]["q"] == "a b&c%d+é"


@pytest.mark.parametrize(
    "name", ["a&admin=1", "a=b", "x#frag", "a+b c", "%26admin", "a;b", "é/ü", "?x=1"]
)
async def test_an_injection_attempt_stays_inside_the_value(
    mock_server: MockServer, name: str
) -> None:
    with pytest.raises(ValueError, match="not a valid field list"):
        rh.FieldMask([name])  # refused by default
    mask = rh.FieldMask([name], validate=False)  # and harmless even when allowed
    async with aiohttp.ClientSession(middlewares=(mask,)) as session:
        got = await echo(session, mock_server.url("/anything"))
    assert got["args"] == {"fields": name}
    assert [pair[0] for pair in got["query"]] == ["fields"]


async def test_injection_raw_encoding(mock_server: MockServer) -> None:
    mask = rh.FieldMask(["a&admin=1"], validate=False)
    async with aiohttp.ClientSession(middlewares=(mask,)) as session:
        got = await echo(session, mock_server.url("/anything"))
    assert got["url"] == "/anything?fields=a%26admin%3D1"
    assert "admin" not in got["args"]


async def test_header_style(mock_server: MockServer) -> None:
    google = rh.FieldMask(["places.displayName", "places.id"], style="header")
    custom = rh.FieldMask("id,name", style="header", param="X-Fields")
    async with aiohttp.ClientSession(middlewares=(google, custom)) as session:
        got = await echo(session, mock_server.url("/anything"))
    assert got["headers"]["X-Goog-FieldMask"] == "places.displayName,places.id"
    assert got["headers"]["X-Fields"] == "id,name"
    assert got["args"] == {}


async def test_jsonapi_sparse_fieldsets(mock_server: MockServer) -> None:
    mask = rh.FieldMask({"articles": ["title", "body"], "people": "name"}, style="jsonapi")
    async with aiohttp.ClientSession(middlewares=(mask,)) as session:
        got = await echo(session, mock_server.url("/anything"), params={"include": "author"})
        assert got["args"] == {
            "include": "author",
            "fields[articles]": "title,body",
            "fields[people]": "name",
        }
        # the request's own fieldset for one type wins; the other type is still added
        got = await echo(session, mock_server.url("/anything"), params={"fields[people]": "id"})
        assert got["args"] == {"fields[people]": "id", "fields[articles]": "title,body"}


async def test_a_request_that_already_carries_the_mask_is_left_alone(
    mock_server: MockServer,
) -> None:
    events: list[rh.Event] = []
    query = rh.FieldMask(["id"], on_event=events.append)
    header = rh.FieldMask(["id"], style="header")
    async with aiohttp.ClientSession(middlewares=(query, header)) as session:
        got = await echo(
            session, mock_server.url("/anything"), params={"fields": "name"},
            headers={"X-Goog-FieldMask": "name"},
        )
    assert got["query"] == [["fields", "name"]]
    assert got["headers"]["X-Goog-FieldMask"] == "name"
    assert [e.name for e in events] == ["fieldmask.kept"]


async def test_match_filters_by_host_prefix_or_callable(mock_server: MockServer) -> None:
    prefix = str(mock_server.url("/anything/v1/"))
    cases: list[tuple[Any, str, bool]] = [
        ("127.0.0.1", "/anything", True),
        ("api.example.com", "/anything", False),
        ("*.0.0.1", "/anything", True),
        (prefix, "/anything/v1/users", True),
        (prefix, "/anything/v1", True),
        (prefix, "/anything/v10/users", False),
        ([prefix, "api.example.com"], "/anything/v2", False),
        (lambda url: url.path.endswith("/masked"), "/anything/masked", True),
        (lambda url: url.path.endswith("/masked"), "/anything/plain", False),
    ]
    for match, path, masked in cases:
        mask = rh.FieldMask(["id"], match=match)
        async with aiohttp.ClientSession(middlewares=(mask,)) as session:
            got = await echo(session, mock_server.url(path))
        assert ("fields" in got["args"]) is masked, (match, path)


async def test_override_and_disabled_for_a_block(mock_server: MockServer) -> None:
    mask = rh.FieldMask(["id"])
    async with aiohttp.ClientSession(middlewares=(mask,)) as session:
        url = mock_server.url("/anything")
        with mask.override(["id", "email"]):
            assert (await echo(session, url))["args"] == {"fields": "id,email"}
            with mask.disabled():
                assert (await echo(session, url))["args"] == {}
            assert (await echo(session, url))["args"] == {"fields": "id,email"}
        assert (await echo(session, url))["args"] == {"fields": "id"}
        other = rh.FieldMask(["x"])
        with other.disabled():  # another mask's switch does not touch this one
            assert (await echo(session, url))["args"] == {"fields": "id"}
    with pytest.raises(ValueError, match="not a valid field list"), mask.override(["bad name"]):
        pass


async def test_repeated_interleaved_and_already_masked_urls(mock_server: MockServer) -> None:
    events: list[rh.Event] = []
    mask = rh.FieldMask(["id"], on_event=events.append)
    a, b = mock_server.url("/anything/a"), mock_server.url("/anything/b")
    async with aiohttp.ClientSession(middlewares=(mask,)) as session:
        for url in (a, a, b, a):  # the URL before again, another one, one seen earlier
            got = await echo(session, url)
            assert got["path"] == url.path and got["query"] == [["fields", "id"]]
        for _ in range(2):  # equal URLs, each a new object: the request's own choice wins
            got = await echo(session, a, params={"fields": "name"})
            assert got["query"] == [["fields", "name"]]
        with mask.override(["email"]):  # the remembered masks are for the configured fields
            assert (await echo(session, a))["query"] == [["fields", "email"]]
    assert [e.name for e in events] == ["fieldmask.applied"] * 4 + ["fieldmask.kept"] * 2 + [
        "fieldmask.applied"
    ]


async def test_remembered_masks_are_bounded(
    mock_server: MockServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fieldmask, "_MASKS_KEPT", 3)
    mask = rh.FieldMask(["id"])
    async with aiohttp.ClientSession(middlewares=(mask,)) as session:
        for n in [*range(8), 0, 7]:
            url = mock_server.url(f"/anything/{n}")
            got = await echo(session, url, params={"n": str(n)})
            assert got["args"] == {"n": str(n), "fields": "id"}
            assert len(mask._masks) <= 3


async def test_applied_again_after_a_redirect(mock_server: MockServer) -> None:
    mock_server.script("/old", Reply(302, headers={"Location": "/anything/new"}))
    async with aiohttp.ClientSession(middlewares=(rh.FieldMask(["id"]),)) as session:
        got = await echo(session, mock_server.url("/old"))
    assert got["path"] == "/anything/new"
    assert got["query"] == [["fields", "id"]]
    assert mock_server.requests_for("/old")[0].query["fields"] == "id"


async def test_through_wrap_and_standard(mock_server: MockServer) -> None:
    async with aiohttp.ClientSession() as session:
        api = rh.wrap(session, rh.FieldMask(["id"]))
        assert (await echo(api, mock_server.url("/anything")))["args"] == {"fields": "id"}
    stack = rh.standard(fields=["id", "name"])[0]
    assert isinstance(stack.layers[0], rh.FieldMask)  # outermost
    async with aiohttp.ClientSession(middlewares=rh.standard(fields=["id"])) as session:
        assert (await echo(session, mock_server.url("/anything")))["args"] == {"fields": "id"}
    custom = rh.FieldMask(["id"], style="header")
    assert rh.standard(fields=custom)[0].layers[0] is custom
    assert not any(isinstance(x, rh.FieldMask) for x in rh.standard()[0].layers)


def test_decorator_mode_is_refused() -> None:
    with pytest.raises(TypeError, match="FieldMask only works on HTTP requests"):
        rh.resilient(rh.FieldMask(["id"]))


async def test_events_are_redacted(mock_server: MockServer) -> None:
    events: list[rh.Event] = []
    mask = rh.FieldMask(["id"], on_event=events.append)
    async with aiohttp.ClientSession(middlewares=(mask,)) as session:
        await echo(session, mock_server.url("/anything"), params={"api_key": "s3cr3t"})
    [event] = events
    assert event.name == "fieldmask.applied" and event.method == "GET"
    assert event.url is not None and "s3cr3t" not in event.url and "fields=id" in event.url


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"fields": []}, ValueError, "at least one field"),
        ({"fields": 3}, TypeError, "fields must be a sequence"),
        ({"fields": [3]}, TypeError, "field names must be str"),
        ({"fields": ["a b"]}, ValueError, "not a valid field list"),
        ({"fields": ["a,,b"]}, ValueError, "not a valid field list"),
        ({"fields": ["items(id"]}, ValueError, r"'\)' expected"),
        ({"fields": ["a."]}, ValueError, "field name expected"),
        ({"fields": [""]}, ValueError, "not a valid field list"),
        ({"fields": ["a\nb"], "validate": False}, ValueError, "control characters"),
        ({"fields": {"a": ["b"]}}, TypeError, "style='jsonapi'"),
        ({"fields": ["a"], "style": "jsonapi"}, TypeError, "mapping of resource type"),
        ({"fields": {"a b": ["c"]}, "style": "jsonapi"}, ValueError, "JSON:API member"),
        ({"fields": ["a"], "style": "body"}, ValueError, "style must be one of"),
        ({"fields": ["a"], "style": "header", "param": "X Bad"}, ValueError, "header name"),
        ({"fields": ["a"], "param": ""}, TypeError, "param"),
        ({"fields": ["a"], "match": 3}, TypeError, "match must be"),
        ({"fields": ["a"], "match": "/path"}, ValueError, "neither a host"),
        ({"fields": ["a"], "validate": "yes"}, TypeError, "validate must be a bool"),
        ({"fields": ["a"], "on_event": [3]}, TypeError, "on_event"),
    ],
)
def test_constructor_validates(kwargs: dict[str, Any], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        rh.FieldMask(**kwargs)


def test_repr_and_fields_copy() -> None:
    assert repr(rh.FieldMask(["id"])) == "FieldMask(['id'])"
    names = ["id"]
    mask = rh.FieldMask(names)
    names.append("bad name")
    assert mask.fields == ["id"]
    assert rh.FieldMask(n for n in ("a", "b")).fields == ["a", "b"]
    assert "style='header'" in repr(rh.FieldMask(["id"], style="header", match="a.test"))


# -- the field-list grammar ----------------------------------------------------------------

_chars = string.ascii_letters + string.digits + "_-"
_name = st.text(alphabet=_chars, min_size=1, max_size=8) | st.just("*")
_path = st.lists(_name, min_size=1, max_size=3).flatmap(
    lambda parts: st.lists(st.sampled_from("./"), min_size=len(parts) - 1,
                           max_size=len(parts) - 1).map(
        lambda seps: parts[0] + "".join(s + p for s, p in zip(seps, parts[1:], strict=True))
    )
)
_field = st.recursive(
    _path,
    lambda inner: st.tuples(_path, st.lists(inner, min_size=1, max_size=3)).map(
        lambda t: f"{t[0]}({','.join(t[1])})"
    ),
    max_leaves=6,
)


@given(st.lists(_field, min_size=1, max_size=4))
def test_grammar_accepts_every_well_formed_list(fields: list[str]) -> None:
    _check_expr(",".join(fields))


@given(_field, st.sampled_from(list("&=#?; \"'<>{}[]\\%+\t")), st.data())
def test_grammar_rejects_a_reserved_character_anywhere(
    field: str, bad: str, data: st.DataObject
) -> None:
    at = data.draw(st.integers(0, len(field)))
    with pytest.raises(ValueError):
        _check_expr(field[:at] + bad + field[at:])


@given(st.text(alphabet=st.characters(min_codepoint=0x20, blacklist_categories=("Cs",)),
               min_size=1, max_size=30))
def test_any_printable_name_round_trips_through_the_query(name: str) -> None:
    # what FieldMask does to the URL, checked for any printable value: one parameter, exact
    url = URL("http://h.test/p?a=1").extend_query((("fields", name),))
    assert URL(str(url)).query.getall("fields") == [name]
    assert list(URL(str(url)).query) == ["a", "fields"]


async def test_outermost_so_the_cache_key_includes_the_mask(mock_server: MockServer) -> None:
    mask = rh.FieldMask(["id"])
    clock = FakeClock()
    stack = rh.standard(fields=mask, cache=rh.Cache(60, clock=clock))
    assert [type(layer).__name__ for layer in stack[0].layers][:2] == ["FieldMask", "Cache"]
    async with aiohttp.ClientSession(middlewares=stack) as session:
        url = mock_server.url("/anything/users")
        first = await echo(session, url)
        assert first["args"] == {"fields": "id"}
        assert (await echo(session, url)) == first  # a hit: same masked key
        with mask.disabled():
            full = await echo(session, url)  # not served the masked answer
        assert full["args"] == {}
        with mask.override(["id", "email"]):
            assert (await echo(session, url))["args"] == {"fields": "id,email"}
    assert mock_server.count("/anything/users") == 3
