"""Strategies as pure functions of a page: no server needed."""

from __future__ import annotations

from typing import Any

import pytest
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

import resilient_http as rh
from resilient_http.strategies import MISSING, Strategy, get_path, path_of


def page(body: Any, items: Any = None, *, url: str = "https://api.test/x", link: str | None = None,
         number: int = 1) -> rh.Page:
    headers: CIMultiDict[str] = CIMultiDict()
    if link is not None:
        headers.add("Link", link)
    if items is None:
        items = body if isinstance(body, list) else []
    return rh.Page(number, URL(url), 200, CIMultiDictProxy(headers), body, items)


def test_link_header_next_and_end() -> None:
    s = rh.LinkHeader()
    assert s.next(page([], link='<https://api.test/x?page=2>; rel="next"')) == (
        "https://api.test/x?page=2"
    )
    assert s.next(page([], link='<https://api.test/x?page=1>; rel="prev"')) is None
    assert s.next(page([])) is None
    assert rh.LinkHeader(rel="NEXT").next(page([], link="</n>; rel=next")) == "/n"


def test_body_link_jsonapi_and_graph() -> None:
    s = rh.BodyLink()
    assert s.next(page({"links": {"next": "/a?page[number]=2"}})) == "/a?page[number]=2"
    assert s.next(page({"links": {"next": {"href": "/b"}}})) == "/b"  # JSON:API link object
    assert s.next(page({"links": {"next": None}})) is None
    assert s.next(page({"links": {}})) is None
    assert s.next(page({"links": {"next": ""}})) is None
    with pytest.raises(ValueError, match="not a URL"):
        s.next(page({"links": {"next": 3}}))
    graph = rh.BodyLink(("@odata.nextLink",))
    assert graph.next(page({"@odata.nextLink": "https://graph.test/n"})) == "https://graph.test/n"


def test_cursor_from_last_item_with_has_more() -> None:
    s = rh.Cursor("starting_after", item_field="id", has_more="has_more")
    assert s.next(page({"has_more": True}, [{"id": "a"}, {"id": "b"}])) == {"starting_after": "b"}
    assert s.next(page({"has_more": False}, [{"id": "a"}])) is None
    with pytest.raises(ValueError, match="no items"):
        s.next(page({"has_more": True}, []))
    with pytest.raises(ValueError, match="not true/false"):
        s.next(page({"has_more": "yes"}, [{"id": "a"}]))
    with pytest.raises(ValueError, match="no 'has_more'"):
        s.next(page({}, [{"id": "a"}]))
    with pytest.raises(ValueError, match="no 'id' key"):
        s.next(page({"has_more": True}, [{"name": "a"}]))
    with pytest.raises(ValueError, match="not a string or an integer"):
        s.next(page({"has_more": True}, [{"id": None}]))


def test_cursor_from_body_field() -> None:
    s = rh.Cursor("cursor", field="response_metadata.next_cursor")
    body = {"response_metadata": {"next_cursor": "dXNlcjpV"}}
    assert s.next(page(body)) == {"cursor": "dXNlcjpV"}
    assert s.next(page({"response_metadata": {"next_cursor": ""}})) is None
    assert s.next(page({})) is None
    assert rh.Cursor().next(page({"next_cursor": 17})) == {"cursor": 17}
    both = rh.Cursor(field="next", has_more="more")
    with pytest.raises(ValueError, match="has_more is true"):
        both.next(page({"more": True}))


def test_page_token_only_an_empty_token_ends() -> None:
    s = rh.PageToken()
    assert s.next(page({"files": []}, [])) is None
    assert s.next(page({"files": [], "nextPageToken": "t2"}, [])) == {"pageToken": "t2"}
    assert s.next(page({"files": [], "nextPageToken": ""}, [])) is None
    with pytest.raises(ValueError, match="not a string"):
        s.next(page({"nextPageToken": 5}))


def test_offset_and_page_number_read_the_page_url() -> None:
    s = rh.Offset(page_size=10)
    assert s.first_params() == {"offset": 0, "limit": 10}
    assert s.next(page([1, 2, 3], url="https://a.test/?offset=20&limit=10")) == {"offset": 23}
    assert s.next(page([], url="https://a.test/?offset=20")) is None
    assert rh.Offset(start=5).next(page([1], url="https://a.test/")) == {"offset": 6}
    t = rh.Offset(total="meta.total")
    assert t.next(page({"meta": {"total": 4}}, [1, 2], url="https://a.test/?offset=2")) is None
    assert t.next(page({"meta": {"total": 5}}, [1, 2], url="https://a.test/?offset=2")) == {
        "offset": 4
    }
    with pytest.raises(ValueError, match="offset"):
        s.next(page([1], url="https://a.test/?offset=x"))

    n = rh.PageNumber(page_size=2)
    assert n.first_params() == {"page": 1, "per_page": 2}
    assert n.next(page([1, 2], url="https://a.test/?page=3")) == {"page": 4}
    assert n.next(page([], url="https://a.test/?page=3")) is None
    last = rh.PageNumber(total_pages="total_pages")
    assert last.next(page({"total_pages": 3}, [1], url="https://a.test/?page=3")) is None
    assert last.next(page({"total_pages": 3}, [1], url="https://a.test/?page=2")) == {"page": 3}
    with pytest.raises(ValueError, match="not an integer"):
        last.next(page({"total_pages": "3"}, [1]))


def test_strategies_satisfy_the_protocol() -> None:
    for s in (rh.LinkHeader(), rh.BodyLink(), rh.Cursor(), rh.PageToken(), rh.Offset(),
              rh.PageNumber()):
        assert isinstance(s, Strategy)
        assert type(s).__name__ in repr(s)


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: rh.LinkHeader(page_size=0), ValueError, "page_size must be >= 1"),
        (lambda: rh.LinkHeader(page_size=2.5), TypeError, "page_size must be an int"),
        (lambda: rh.LinkHeader(rel="next prev"), ValueError, "rel"),
        (lambda: rh.LinkHeader(size_param=""), TypeError, "size_param"),
        (lambda: rh.Cursor(field="a", item_field="id"), ValueError, "not both"),
        (lambda: rh.Cursor(param=""), TypeError, "param"),
        (lambda: rh.Cursor(item_field=""), TypeError, "item_field"),
        (lambda: rh.Cursor(has_more="a..b"), ValueError, "has_more"),
        (lambda: rh.PageToken(token_field=3), TypeError, "token_field"),
        (lambda: rh.Offset(start=-1), ValueError, "start"),
        (lambda: rh.PageNumber(total_pages=""), ValueError, "total_pages"),
        (lambda: rh.BodyLink(items=5), TypeError, "items"),
    ],
)
def test_constructors_validate(make: Any, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        make()


def test_paths() -> None:
    assert path_of("p", "a.b") == ("a", "b")
    assert path_of("p", ["a.b"]) == ("a.b",)
    assert get_path({"a": {"b": 1}}, ("a", "b")) == 1
    assert get_path({"a": [1]}, ("a", "b")) is MISSING  # not an error
