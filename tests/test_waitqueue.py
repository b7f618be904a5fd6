"""The waiters of one key: FIFO within a priority class, urgent first, no starvation."""

from __future__ import annotations

import itertools

from resilient_http._waitqueue import BACKGROUND, MAX_BYPASS, NORMAL, URGENT, WaitQueue


class F:
    """A waiter stand-in with asyncio.Future's done()."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.dead = False

    def done(self) -> bool:
        return self.dead


def names(q: WaitQueue, n: int) -> list[str]:
    return [q.pop().name for _ in range(n)]


def test_fifo_within_a_class() -> None:
    q = WaitQueue()
    for i in range(5):
        q.push(F(f"n{i}"), NORMAL)
    assert names(q, 5) == ["n0", "n1", "n2", "n3", "n4"]
    assert len(q) == 0


def test_urgent_overtakes_normal_and_background() -> None:
    q = WaitQueue()
    q.push(F("b0"), BACKGROUND)
    q.push(F("n0"), NORMAL)
    q.push(F("u0"), URGENT)
    q.push(F("u1"), URGENT)
    assert names(q, 4) == ["u0", "u1", "n0", "b0"]


def test_background_is_not_starved_by_a_stream_of_urgent_work() -> None:
    q = WaitQueue()
    for i in range(3):
        q.push(F(f"b{i}"), BACKGROUND)
    served = []
    for i in range(30):
        q.push(F(f"u{i}"), URGENT)
        q.push(F(f"u{i}x"), URGENT)  # urgent arrives faster than it is served
        served.append(q.pop().name)
    backgrounds = [s for s in served if s.startswith("b")]
    assert backgrounds == ["b0", "b1", "b2"]  # FIFO within the class, all served
    first = served.index("b0")
    assert first == MAX_BYPASS  # passed over exactly MAX_BYPASS times, then served
    assert served.index("b1") - first == MAX_BYPASS + 1


def test_three_classes_each_get_served_under_pressure() -> None:
    q = WaitQueue()
    for i in range(10):
        q.push(F(f"n{i}"), NORMAL)
        q.push(F(f"b{i}"), BACKGROUND)
    served = []
    for i in range(40):
        q.push(F(f"u{i}"), URGENT)
        served.append(q.pop().name)
    window = MAX_BYPASS + 2
    for cls in "nb":
        idx = [k for k, s in enumerate(served) if s.startswith(cls)]
        assert idx, cls
        gaps = [b - a for a, b in itertools.pairwise([-1, *idx])]
        assert max(gaps) <= window, (cls, served)


def test_cancelled_waiters_are_skipped_and_counted_out() -> None:
    q = WaitQueue()
    ws = [F(f"n{i}") for i in range(200)]
    for w in ws:
        q.push(w, NORMAL)
    for w in ws[:150]:
        w.dead = True
        q.discard(NORMAL)
    assert len(q) == 50
    assert len(q.queues[NORMAL]) <= 4 * 50 + 64  # compacted, not left to grow
    assert q.ahead(NORMAL) == 50
    assert names(q, 50) == [f"n{i}" for i in range(150, 200)]
    assert len(q.queues[NORMAL]) == 0


def test_entries_done_before_their_discard_are_skipped_not_popped_past_the_end() -> None:
    # A cancelled waiter is done at once but discards itself only when its task next runs.
    q = WaitQueue()
    urgent, normal = [F("u0"), F("u1")], F("n0")
    for w in urgent:
        q.push(w, URGENT)
    q.push(normal, NORMAL)
    for w in urgent:
        w.dead = True  # not discarded yet
    assert q.pop() is normal  # the picked class had only done entries: the next one serves
    assert q.pop() is None  # every entry still counted is done
    for _ in urgent:
        q.discard(URGENT)
    assert len(q) == 0
    q.push(F("u2"), URGENT)
    assert names(q, 1) == ["u2"]
