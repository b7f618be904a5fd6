"""Fine-tune a model through an OpenAI-style API, resiliently.

    OPENAI_API_KEY=sk-... python examples/fine_tune.py train.jsonl --validation valid.jsonl
    python examples/fine_tune.py train.jsonl --plot loss.png      # needs matplotlib

1. Checks the training file line by line: each line one JSON object with a ``messages`` list
   of ``{"role", "content"}``; the first bad line is reported and the script exits with 2.
2. Uploads it (``POST /v1/files``, multipart, ``purpose=fine-tune``) streamed from disk.
   ``Retry(idempotency_key=True)`` gives the POST one ``Idempotency-Key`` for all its
   attempts, so a connection reset mid-upload is retried without creating two files; the
   open file is re-read from its start on each attempt (aiohttp seeks it back), never held
   in memory. A body that cannot be re-read (a generator) is never re-sent empty: the retry
   raises ``rh.BodyNotReplayable`` instead.
3. Creates the job with ``n_epochs``, ``batch_size`` and ``learning_rate_multiplier``.
4. ``rh.poll()`` waits for it with backoff (a 429 on the way is retried after Retry-After).
5. Pages through its events with the ``after`` cursor (``rh.presets.openai()``), prints the
   training loss by step, and warns about overfitting: over the last third of the steps,
   training loss fell and validation loss fell less than half as much (or rose).

The API base URL: ``--base-url``, else ``$OPENAI_BASE_URL``, else https://api.openai.com.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

import aiohttp

import resilient_http as rh

Point = tuple[int, float, float | None]  # step, training loss, validation loss
ROLES = {"system", "user", "assistant", "tool", "developer"}


def check_jsonl(path: Path) -> str | None:
    """The first problem in a chat-format JSONL file as ``"line N: why"``, or ``None``."""
    with path.open(encoding="utf-8") as lines:  # one line at a time, never the whole file
        count = 0
        for count, line in enumerate(lines, 1):
            try:
                record = json.loads(line)
            except ValueError as exc:
                return f"line {count}: not valid JSON ({exc})"
            messages = record.get("messages") if isinstance(record, dict) else None
            if not isinstance(messages, list) or not messages:
                return f'line {count}: no "messages" list'
            for i, message in enumerate(messages):
                if not isinstance(message, dict) or message.get("role") not in ROLES:
                    return f"line {count}: message {i} has no valid role"
                if not isinstance(message.get("content"), str):
                    return f"line {count}: message {i} has no text content"
        return None if count else "the file is empty"


async def upload(session: aiohttp.ClientSession, base: str, path: Path) -> str:
    """Upload ``path`` for fine-tuning, streamed from disk; return the file id."""
    with path.open("rb") as file:
        form = aiohttp.FormData()
        form.add_field("purpose", "fine-tune")
        form.add_field("file", file, filename=path.name, content_type="application/jsonl")
        async with session.post(f"{base}/v1/files", data=form) as resp:
            resp.raise_for_status()
            uploaded = await resp.json()
    print(f"uploaded {path.name}: {uploaded['id']} ({uploaded['bytes']} bytes, "
          f"{rh.info(resp).attempts or 1} attempt(s))")
    return str(uploaded["id"])


def overfitting(curve: list[Point]) -> str | None:
    """A warning when, over the last third of the steps, training loss fell and validation
    loss fell less than half as much (or rose); ``None`` otherwise."""
    points = [(s, t, v) for s, t, v in curve if v is not None]
    if len(points) < 6:
        return None
    first, last = points[-(len(points) // 3) - 1], points[-1]
    train_drop, valid_drop = first[1] - last[1], first[2] - last[2]
    if train_drop > 0 and valid_drop < train_drop / 2:
        return (
            f"WARNING: overfitting: from step {first[0]} to {last[0]} training loss fell "
            f"{train_drop:.3f} ({first[1]:.3f} -> {last[1]:.3f}) but validation loss "
            f"{'rose' if valid_drop < 0 else 'fell only'} {abs(valid_drop):.3f} "
            f"({first[2]:.3f} -> {last[2]:.3f})"
        )
    return None


def plot(curve: list[Point], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot([s for s, _, _ in curve], [t for _, t, _ in curve], label="training loss")
    valid = [(s, v) for s, _, v in curve if v is not None]
    if valid:
        ax.plot([s for s, _ in valid], [v for _, v in valid], label="validation loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    print(f"plot written to {out}")


async def fine_tune(args: argparse.Namespace) -> int:
    base = args.base_url.rstrip("/")
    headers = {}
    if key := os.environ.get("OPENAI_API_KEY"):
        headers["Authorization"] = f"Bearer {key}"
    middlewares = rh.standard(
        retry=rh.Retry(attempts=4, idempotency_key=True),  # POSTs retried with one key
        total_timeout=None,                    # the poll's own timeout= bounds the wait
        attempt_timeout=600,                   # an upload of a large file takes a while
    )
    async with aiohttp.ClientSession(headers=headers, middlewares=middlewares) as session:
        training = await upload(session, base, args.training_file)
        validation = await upload(session, base, args.validation) if args.validation else None
        async with session.post(f"{base}/v1/fine_tuning/jobs", json={
            "model": args.model,
            "training_file": training,
            **({"validation_file": validation} if validation else {}),
            "hyperparameters": {"n_epochs": args.n_epochs, "batch_size": args.batch_size,
                                "learning_rate_multiplier": args.learning_rate_multiplier},
        }) as resp:
            resp.raise_for_status()
            job_id = (await resp.json())["id"]
        print(f"created job {job_id}")

        job_url = f"{base}/v1/fine_tuning/jobs/{job_id}"
        async for update in rh.poll_updates(
            session, job_url, rh.presets.openai_fine_tuning,
            interval=rh.Backoff(args.poll_interval, cap=60, jitter="equal"), timeout=args.timeout,
        ):
            print(f"job {job_id}: {update.status} (poll {update.polls})")
        job = update.body

        curve: dict[int, Point] = {}
        async for event in rh.paginate(session, f"{job_url}/events", rh.presets.openai(50)):
            data = event.get("data") or {}
            if "step" in data and "train_loss" in data:
                curve[data["step"]] = (data["step"], data["train_loss"], data.get("valid_loss"))
    points = sorted(curve.values())
    for step, train, valid in points:
        shown = "" if valid is None else f"  validation loss {valid:.4f}"
        print(f"step {step:4d}  training loss {train:.4f}{shown}")
    if warning := overfitting(points):
        print(warning)
    if args.plot and points:
        plot(points, args.plot)
    print(f"job {job_id} {job['status']}: {job.get('fine_tuned_model')}")
    return 0 if job["status"] == "succeeded" else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("training_file", type=Path)
    parser.add_argument("--validation", type=Path, help="a validation JSONL file")
    parser.add_argument("--model", default="gpt-4o-mini-2024-07-18")
    parser.add_argument("--n-epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--learning-rate-multiplier", type=float, default=1.0)
    parser.add_argument("--base-url",
                        default=os.environ.get("OPENAI_BASE_URL", "https://api.openai.com"))
    parser.add_argument("--poll-interval", type=float, default=5.0,
                        help="first wait between polls, seconds (then doubling, at most 60)")
    parser.add_argument("--timeout", type=float, default=4 * 3600, help="seconds")
    parser.add_argument("--plot", type=Path, metavar="PNG", help="draw the losses to PNG")
    args = parser.parse_args(argv)
    for path in (args.training_file, args.validation):
        if path is not None and (problem := check_jsonl(path)):
            print(f"{path}: {problem}", file=sys.stderr)
            return 2
    return asyncio.run(fine_tune(args))


if __name__ == "__main__":
    sys.exit(main())
