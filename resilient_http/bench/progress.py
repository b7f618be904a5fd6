"""Progress while a benchmark runs: a ``rich`` bar on a terminal, dots otherwise."""

from __future__ import annotations

import sys
from typing import IO, Any

__all__ = ["have_rich", "make_progress"]


def have_rich() -> bool:
    """Whether ``rich`` is installed."""
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


class _PlainProgress:
    """A line per variant on stderr, a dot per sample."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def start(self, description: str, total: int) -> None:
        self._stream.write(f"{description}: {total} runs ")
        self._stream.flush()

    def advance(self, detail: str) -> None:
        self._stream.write(".")
        self._stream.flush()

    def stop(self) -> None:
        self._stream.write("\n")
        self._stream.flush()


class _RichProgress:
    """A ``rich`` progress bar on stderr, removed when the variant is done."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"), console=Console(stderr=True), transient=True,
        )
        self._task: Any = None

    def start(self, description: str, total: int) -> None:
        self._progress.start()
        self._task = self._progress.add_task(description, total=total, detail="")

    def advance(self, detail: str) -> None:
        self._progress.update(self._task, advance=1, detail=detail)

    def stop(self) -> None:
        self._progress.stop()
        if self._task is not None:
            self._progress.remove_task(self._task)
            self._task = None


def make_progress(enabled: bool = True) -> Any:
    """A rich bar when stderr is a terminal and rich is installed, dots otherwise, nothing
    when ``enabled`` is false."""
    from resilient_http.bench.runner import NoProgress

    if not enabled:
        return NoProgress()
    if sys.stderr.isatty() and have_rich():
        return _RichProgress()
    return _PlainProgress(sys.stderr)
