"""RFC 8288 Link header parser: examples from the RFC and GitHub, malformed input, properties."""

from __future__ import annotations

import string

from hypothesis import given
from hypothesis import strategies as st

from resilient_http._link import Link, find_rel, parse_link_header

GITHUB = (
    '<https://api.github.com/repositories/1300192/issues?page=2>; rel="prev", '
    '<https://api.github.com/repositories/1300192/issues?page=4>; rel="next", '
    '<https://api.github.com/repositories/1300192/issues?page=515>; rel="last", '
    '<https://api.github.com/repositories/1300192/issues?page=1>; rel="first"'
)


def test_github_header() -> None:
    links = parse_link_header(GITHUB)
    assert [link.rel for link in links] == [("prev",), ("next",), ("last",), ("first",)]
    assert find_rel(GITHUB, "next") == "https://api.github.com/repositories/1300192/issues?page=4"
    assert find_rel(GITHUB, "NEXT") == find_rel(GITHUB, "next")
    assert find_rel(GITHUB, "self") is None


def test_rfc8288_examples() -> None:
    # RFC 8288 §3.5
    assert parse_link_header('<http://example.com/TheBook/chapter2>; rel="previous"; '
                             'title="previous chapter"') == [
        Link("http://example.com/TheBook/chapter2", ("previous",), {"title": "previous chapter"})
    ]
    assert parse_link_header('</>; rel="http://example.net/foo"') == [
        Link("/", ("http://example.net/foo",), {})
    ]
    two = parse_link_header(
        '</TheBook/chapter2>; rel="previous"; title*=UTF-8\'de\'letztes%20Kapitel, '
        '</TheBook/chapter4>; rel="next"; title*=UTF-8\'de\'n%c3%a4chstes%20Kapitel'
    )
    assert [(link.target, link.rel) for link in two] == [
        ("/TheBook/chapter2", ("previous",)),
        ("/TheBook/chapter4", ("next",)),
    ]
    assert two[1].params["title*"] == "UTF-8'de'n%c3%a4chstes%20Kapitel"
    multi = parse_link_header('<http://example.org/>; rel="start http://example.net/relation/other"')
    assert multi[0].rel == ("start", "http://example.net/relation/other")


def test_commas_and_semicolons_inside_uri_and_quotes() -> None:
    header = (
        '<https://x.test/a?ids=1,2;3>; rel="next"; title="a, b; c", <https://x.test/z>; rel=last'
    )
    links = parse_link_header(header)
    assert [(link.target, link.rel) for link in links] == [
        ("https://x.test/a?ids=1,2;3", ("next",)),
        ("https://x.test/z", ("last",)),
    ]
    assert links[0].params == {"title": "a, b; c"}


def test_token_rel_whitespace_case_and_first_occurrence_wins() -> None:
    links = parse_link_header('  <a> ;REL = Next ; rel="prev" ,, <b>;rel=prev  ')
    assert links == [Link("a", ("next",), {}), Link("b", ("prev",), {})]


def test_several_header_values() -> None:
    assert find_rel(['<a>; rel="prev"', '<b>; rel="next"'], "next") == "b"


def test_escaped_quotes() -> None:
    assert parse_link_header(r'<a>; rel=next; title="say \"hi\""')[0].params == {
        "title": 'say "hi"'
    }


def test_malformed_links_are_skipped_not_fatal() -> None:
    header = 'garbage; rel=next, <good>; rel="next", <bad>; rel=next junk, <unterminated'
    assert parse_link_header(header) == [Link("good", ("next",), {})]
    assert parse_link_header("") == []
    assert parse_link_header(",,,") == []
    assert parse_link_header('<a>; title="never closed, <b>; rel=next') == [
        Link("a", (), {"title": "never closed, <b>; rel=next"})
    ]


# -- properties ---------------------------------------------------------------------------

_uri = st.text(
    alphabet=string.ascii_letters + string.digits + "/:?&=.,;-_~%+!$'()*@", min_size=1
).map(lambda s: "https://h.test/" + s)
_token = st.text(alphabet=string.ascii_lowercase + string.digits + "-.", min_size=1, max_size=12)
_quoted_value = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20
)


@st.composite
def _links(draw: st.DrawFn) -> Link:
    target = draw(_uri)
    rel = tuple(draw(st.lists(_token, min_size=1, max_size=3)))
    names = draw(st.lists(_token.filter(lambda t: t != "rel"), max_size=3, unique=True))
    params = {n: draw(_quoted_value) for n in names}
    return Link(target, rel, params)


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _render(link: Link) -> str:
    parts = [f"<{link.target}>", f"rel={_quote(' '.join(link.rel))}"]
    parts += [f"{k}={_quote(v)}" for k, v in link.params.items()]
    return "; ".join(parts)


@given(st.lists(_links(), max_size=5))
def test_round_trip(links: list[Link]) -> None:
    assert parse_link_header(", ".join(_render(link) for link in links)) == links


@given(st.text())
def test_never_raises(text: str) -> None:
    for link in parse_link_header(text):
        assert isinstance(link, Link)


@given(st.lists(_links(), min_size=1, max_size=5), st.data())
def test_find_rel_returns_first_match(links: list[Link], data: st.DataObject) -> None:
    rel = data.draw(st.sampled_from([r for link in links for r in link.rel]))
    header = ", ".join(_render(link) for link in links)
    assert find_rel(header, rel) == next(link.target for link in links if rel in link.rel)
