"""``resilient-http bench --instructions``: the option, its message without valgrind, and
every contender of its table run for real (without valgrind) against a loopback server."""

from __future__ import annotations

from pathlib import Path

import pytest

from resilient_http.bench import cli, instructions
from resilient_http.bench.contenders import REGISTRY
from resilient_http.testing import MockServer


def test_the_option_is_documented(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["bench", "--help"])
    assert "--instructions" in capsys.readouterr().out


def test_without_valgrind_it_says_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no valgrind on it
    assert cli.main(["bench", "--instructions", "--contenders", "bare,cache"]) == 2
    err = capsys.readouterr().err
    assert "valgrind" in err and "apt-get install valgrind" in err


def test_an_unknown_contender_is_named_with_the_known_ones(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["bench", "--instructions", "--contenders", "bare,nope"]) == 2
    err = capsys.readouterr().err
    assert "nope" in err and "aiohttp-retry" in err and "cache-miss" in err


@pytest.mark.parametrize("name", instructions.DEFAULT)
async def test_every_contender_of_the_table_runs(name: str) -> None:
    if name in instructions.PEERS:
        reason = REGISTRY[instructions.PEERS[name]].missing()
        if reason:
            pytest.skip(reason)  # a peer of the [bench] extra, not installed here
    async with MockServer(record=True) as server:
        await instructions.child(name, 3, str(server.url("/ok")))
        paths = [str(r.url) for r in server.requests]
    if name in ("cache", "prebuilt", "client-cache"):
        assert paths == ["/ok"]  # then hits
    elif name in instructions.NEW_URLS:
        assert paths == ["/ok?n=0", "/ok?n=1", "/ok?n=2"]
    else:
        assert paths == ["/ok"] * 3


def test_the_table_reads_over_bare() -> None:
    rows = instructions.table(
        {"bare": 300_000.0, "retry": 310_000.0, "cache": 150_000.0,
         "bare-urls": 320_000.0, "cache-miss": 340_000.0}
    )
    assert rows[2].endswith("| 300,000 |  |")
    assert rows[3].endswith("| 310,000 | +10,000 |")
    assert rows[4].endswith("| 150,000 | instead: 0.50 x bare |")
    assert rows[6].endswith("| 340,000 | +20,000 |")  # over its own baseline
