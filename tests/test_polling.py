"""poll(): a job seen through queued -> running -> succeeded, backoff between polls, the
deadline, events; time driven by FakeClock, the job served by MockServer."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import aiohttp
import pytest

import resilient_http as rh
from resilient_http.testing import FakeClock, MockServer, Reply


def job(status: str, **extra: Any) -> Reply:
    return Reply(json={"object": "fine_tuning.job", "id": "ftjob-abc", "status": status, **extra})


LIFECYCLE = (job("queued"), job("running"), job("running"),
             job("succeeded", fine_tuned_model="ft:gpt-4o-mini:acme::x1"))


async def test_poll_sees_queued_running_succeeded_and_returns_the_final_body(
    mock_server: MockServer,
) -> None:
    mock_server.script("/v1/fine_tuning/jobs/ftjob-abc", *LIFECYCLE, repeat_last=False)
    clock = FakeClock(autojump=True)
    events: list[rh.Event] = []
    async with aiohttp.ClientSession() as session:
        body = await rh.poll(
            session, mock_server.url("/v1/fine_tuning/jobs/ftjob-abc"),
            rh.presets.openai_fine_tuning, interval=5, timeout=600, clock=clock,
            on_event=events.append,
        )
    assert body["status"] == "succeeded"
    assert body["fine_tuned_model"] == "ft:gpt-4o-mini:acme::x1"
    assert mock_server.count("/v1/fine_tuning/jobs/ftjob-abc") == 4
    assert clock.sleeps == [5.0, 5.0, 5.0]
    changes = [
        (e.detail["previous"], e.detail["status"]) for e in events if e.name == "poll.status"
    ]
    assert changes == [(None, "queued"), ("queued", "running"), ("running", "succeeded")]
    assert events[-1].name == "poll.done" and events[-1].detail["polls"] == 4


async def test_iterating_yields_each_new_status(mock_server: MockServer) -> None:
    mock_server.script("/job", *LIFECYCLE, repeat_last=False)
    clock = FakeClock(autojump=True)
    async with aiohttp.ClientSession() as session:
        updates = [
            u async for u in rh.poll_updates(session, mock_server.url("/job"),
                                     rh.presets.openai_fine_tuning, interval=2, clock=clock)
        ]
    assert [u.status for u in updates] == ["queued", "running", "succeeded"]
    assert [u.polls for u in updates] == [1, 2, 4]
    assert [u.elapsed for u in updates] == [0.0, 2.0, 6.0]
    assert [u.done for u in updates] == [False, False, True]
    assert updates[-1].body["status"] == "succeeded"


async def test_times_out_with_deadline_exceeded(mock_server: MockServer) -> None:
    mock_server.script("/job", job("running"))
    clock = FakeClock(autojump=True)
    async with aiohttp.ClientSession() as session:
        with pytest.raises(rh.DeadlineExceeded) as info:
            await rh.poll(session, mock_server.url("/job"), rh.presets.openai_fine_tuning,
                          interval=5, timeout=12, clock=clock)
    # polls at 0, 5, 10; the next (15) would be past 12: gives up at once, no useless sleep
    assert mock_server.count("/job") == 3
    assert clock.now() == 10.0
    message = str(info.value)
    assert "fine-tuning job" in message and "'running'" in message and "3 polls" in message
    assert info.value.timeout == 12.0
    assert isinstance(info.value, asyncio.TimeoutError)


async def test_a_poll_in_flight_at_the_deadline_is_cut(mock_server_factory: Any) -> None:
    clock = FakeClock()
    server: MockServer = await mock_server_factory(clock=clock)
    server.script("/slow", Reply(json={"status": "running"}, delay=60))
    async with aiohttp.ClientSession() as session:
        task = asyncio.get_running_loop().create_task(
            rh.poll(session, server.url("/slow"), done={"succeeded"}, status="status",
                    timeout=timedelta(seconds=10), clock=clock)
        )
        await server.wait_for_requests(1)
        await clock.advance(10)
        with pytest.raises(rh.DeadlineExceeded, match="in flight at the deadline"):
            await asyncio.wait_for(task, 5)


async def test_interval_from_a_backoff_like_object_or_a_callable(mock_server: MockServer) -> None:
    class Doubling:  # Backoff's protocol: delay(n, previous), n from 0
        def __init__(self) -> None:
            self.previous: list[float | None] = []

        def delay(self, n: int, previous: float | None = None) -> float:
            self.previous.append(previous)
            return float(2**n)

    doubling = Doubling()
    async with aiohttp.ClientSession() as session:
        for interval, expected in [
            (doubling, [1.0, 2.0, 4.0]),
            (lambda n: 10.0 * (n + 1), [10.0, 20.0, 30.0]),
            (None, [1.0, 1.5, 2.25]),  # the default: 1 s growing x1.5
            (0, []),
        ]:
            mock_server.script("/job", *LIFECYCLE, repeat_last=False)
            clock = FakeClock(autojump=True)
            await rh.poll(session, mock_server.url("/job"), rh.presets.openai_fine_tuning,
                          interval=interval, clock=clock)
            assert clock.sleeps == expected
    assert doubling.previous == [None, 1.0, 2.0]  # for decorrelated jitter


async def test_default_interval_is_capped_at_30_seconds() -> None:
    from resilient_http.polling import DEFAULT_INTERVAL

    assert DEFAULT_INTERVAL.delay(50) == 30.0
    assert DEFAULT_INTERVAL.delay(8) < 30.0 <= DEFAULT_INTERVAL.delay(9)


async def test_interval_from_the_real_backoff(mock_server: MockServer) -> None:
    mock_server.script("/job", job("running"))
    async with aiohttp.ClientSession() as session:
        clock = FakeClock(autojump=True)
        with pytest.raises(rh.DeadlineExceeded):
            await rh.poll(session, mock_server.url("/job"), rh.presets.openai_fine_tuning,
                          interval=rh.Backoff(5, cap=60, jitter="none"), timeout=300,
                          clock=clock)
        assert clock.sleeps == [5.0, 10.0, 20.0, 40.0, 60.0, 60.0, 60.0]
        # decorrelated jitter: each delay in [base, 3 x previous], given the previous one
        clock = FakeClock(autojump=True)
        rng = iter([1.0] * 20)
        backoff = rh.Backoff(1, cap=100, jitter="decorrelated", random=lambda: next(rng))
        with pytest.raises(rh.DeadlineExceeded):
            await rh.poll(session, mock_server.url("/job"), rh.presets.openai_fine_tuning,
                          interval=backoff, timeout=100, clock=clock)
        assert clock.sleeps == [3.0, 9.0, 27.0]  # the next (81 s) would pass the deadline


async def test_google_operation_preset(mock_server: MockServer) -> None:
    mock_server.script(
        "/v1/operations/op-1",
        Reply(json={"name": "operations/op-1", "metadata": {"state": "PENDING"}}),
        Reply(json={"name": "operations/op-1", "metadata": {"state": "RUNNING"}}),
        Reply(json={"name": "operations/op-1", "done": True, "response": {"uri": "gs://b/o"}}),
    )
    clock = FakeClock(autojump=True)
    async with aiohttp.ClientSession() as session:
        poller = rh.poll_updates(session, mock_server.url("/v1/operations/op-1"),
                         rh.presets.google_operation, interval=1, clock=clock)
        statuses = [u.status async for u in poller]
    assert statuses == ["PENDING", "RUNNING", "done"]


async def test_without_a_status_every_poll_is_an_update(mock_server: MockServer) -> None:
    mock_server.script("/j", Reply(json={"p": 1}), Reply(json={"p": 1}), Reply(json={"p": 2}))
    clock = FakeClock(autojump=True)
    async with aiohttp.ClientSession() as session:
        updates = [u async for u in rh.poll_updates(session, mock_server.url("/j"),
                                            done=lambda b: b["p"] == 2, interval=1, clock=clock)]
    assert [(u.status, u.body["p"]) for u in updates] == [(None, 1), (None, 1), (None, 2)]


async def test_done_and_status_override_the_preset(mock_server: MockServer) -> None:
    mock_server.script("/b", Reply(json={"state": "validating"}), Reply(json={"state": "ok"}))
    clock = FakeClock(autojump=True)
    async with aiohttp.ClientSession() as session:
        body = await rh.poll(session, mock_server.url("/b"), rh.presets.openai_batch,
                             status="state", done={"ok"}, interval=1, clock=clock)
    assert body == {"state": "ok"}


async def test_http_errors_and_non_json_bodies(mock_server: MockServer) -> None:
    mock_server.script("/gone", Reply(404, json={"error": "no such job"}))
    mock_server.script("/html", Reply(200, body=b"<html/>", headers={"Content-Type": "text/html"}))
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientResponseError) as info:
            await rh.poll(session, mock_server.url("/gone"), rh.presets.openai_fine_tuning)
        assert info.value.status == 404
        with pytest.raises(aiohttp.ContentTypeError, match="not JSON"):
            await rh.poll(session, mock_server.url("/html"), rh.presets.openai_fine_tuning)
        # Nested past the interpreter's recursion limit: the same error, not a RecursionError.
        mock_server.script("/deep", Reply(200, body=b"[" * 100_000 + b"]" * 100_000))
        with pytest.raises(aiohttp.ContentTypeError, match=r"not JSON.*recursion"):
            await rh.poll(session, mock_server.url("/deep"), rh.presets.openai_fine_tuning)


async def test_polls_go_through_the_session_layers(mock_server: MockServer) -> None:
    mock_server.script("/anything/job", job("succeeded"))
    async with aiohttp.ClientSession() as session:
        api = rh.wrap(session, rh.FieldMask(["status"]))
        await rh.poll(api, mock_server.url("/anything/job"), rh.presets.openai_fine_tuning)
    assert mock_server.requests_for("/anything/job")[0].query["fields"] == "status"


async def test_single_use_and_validation() -> None:
    async with aiohttp.ClientSession() as session:
        url = "http://127.0.0.1:9/job"
        spec = rh.presets.openai_fine_tuning
        with pytest.raises(TypeError, match="needs job="):
            await rh.poll(session, url)
        with pytest.raises(TypeError, match="session"):
            rh.poll_updates(object(), url, spec)
        with pytest.raises(TypeError, match="JobSpec"):
            rh.poll_updates(session, url, "openai")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="absolute"):
            rh.poll_updates(session, "/job", spec)
        with pytest.raises(TypeError, match="interval"):
            rh.poll_updates(session, url, spec, interval="5s")
        with pytest.raises(ValueError, match="interval"):
            rh.poll_updates(session, url, spec, interval=-1)
        with pytest.raises(ValueError, match="timeout"):
            rh.poll_updates(session, url, spec, timeout=0)
        with pytest.raises(TypeError, match="clock"):
            rh.poll_updates(session, url, spec, clock=object())  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="needs status="):
            rh.JobSpec(done={"ok"})
        with pytest.raises(TypeError, match="done must be"):
            rh.JobSpec(status="s", done="ok")
        poller = rh.poll_updates(session, url, spec)
        poller.__aiter__()
        with pytest.raises(RuntimeError, match="single use"):
            poller.__aiter__()
        assert "Poller GET" in repr(poller) and "JobSpec" in repr(spec)
