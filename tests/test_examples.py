"""Every script in examples/ runs as a user would run it, against its local stand-in."""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from resilient_http.testing.standins.fine_tuning import FineTuningAPI
from resilient_http.testing.standins.github import GitHubAPI
from resilient_http.testing.standins.llm import LLMAPI
from resilient_http.testing.standins.stripe import StripeAPI

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


async def run_example(
    script: str, app: web.Application, *args: str, timeout: float = 30
) -> tuple[int, str, str]:
    """Serve ``app`` on loopback and run ``examples/script`` against it in a child Python
    process; return its exit code, stdout and stderr."""
    async with TestServer(app) as server:
        base = str(server.make_url("")).rstrip("/")
        env = {**os.environ, "PYTHONWARNINGS": "error"}
        env.pop("OPENAI_API_KEY", None)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(EXAMPLES / script), "--base-url", base, *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
        )
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def fingerprint(path: Path) -> tuple[int, str]:
    """A file's size and SHA-256."""
    data = path.read_bytes()
    return len(data), hashlib.sha256(data).hexdigest()


def chat_lines(n: int) -> str:
    line = {"messages": [{"role": "system", "content": "You answer in French."},
                         {"role": "user", "content": "Hello, how are you today?"},
                         {"role": "assistant", "content": "Bonjour, je vais bien, merci."}]}
    return "".join(json.dumps(line) + "\n" for _ in range(n))


@pytest.fixture
def training(tmp_path: Path) -> Path:
    path = tmp_path / "train.jsonl"
    path.write_text(chat_lines(5000))  # ~1 MB: the reset comes in the middle of the upload
    return path


async def test_fine_tune_survives_a_reset_and_a_429(training: Path, tmp_path: Path) -> None:
    valid = tmp_path / "valid.jsonl"
    valid.write_text(chat_lines(20))
    api = FineTuningAPI()
    code, out, err = await run_example(
        "fine_tune.py", api.app(), str(training), "--validation", str(valid),
        "--poll-interval", "0.05", "--n-epochs", "4", "--batch-size", "16",
        "--learning-rate-multiplier", "0.5",
    )
    assert code == 0, err
    # the training upload: cut once, then sent whole, under one key; the validation file once
    first, second, third = api.uploads
    size, sha = fingerprint(training)
    assert not first.complete and 0 < first.received < size
    assert second.complete and (second.received, second.sha256) == (size, sha)
    assert first.idempotency_key and first.idempotency_key == second.idempotency_key
    assert third.complete and third.idempotency_key not in (None, first.idempotency_key)
    assert (third.received, third.sha256) == fingerprint(valid)
    assert "uploaded train.jsonl: file-0001 (980000 bytes, 2 attempt(s))" in out
    assert "uploaded valid.jsonl: file-0002 (3920 bytes, 1 attempt(s))" in out
    (job,) = api.jobs.values()
    assert job["training_file"] == "file-0001" and job["validation_file"] == "file-0002"
    assert job["hyperparameters"] == {"n_epochs": 4, "batch_size": 16,
                                      "learning_rate_multiplier": 0.5}
    # polled to the end through the 429: five polls on the server, four answered
    assert api.polls == 5
    assert "queued (poll 1)" in out and "succeeded (poll" in out
    # 32 events (30 with metrics), 12 to a page, newest first, printed by step
    assert api.event_pages == 3
    steps = [line for line in out.splitlines() if line.startswith("step ")]
    assert len(steps) == 30
    assert steps[0].split()[1] == "1" and steps[-1].split()[1] == "30"
    assert "training loss 1.7430" in steps[0]
    assert "WARNING: overfitting: from step 20 to 30" in out
    assert f"job {job['id']} succeeded: ft:" in out


def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GOOD = '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}'


@pytest.mark.parametrize(("line", "problem"), [
    ("{not json", "line 3: not valid JSON"),
    ("", "line 3: not valid JSON"),
    ('{"prompt": "hi", "completion": "yo"}', 'line 3: no "messages" list'),
    ('{"messages": []}', 'line 3: no "messages" list'),
    ('[1, 2]', 'line 3: no "messages" list'),
    ('{"messages": [{"role": "robot", "content": "hi"}]}', "line 3: message 0 has no valid role"),
    ('{"messages": [{"role": "user", "content": "a"}, {"role": "user"}]}',
     "line 3: message 1 has no text content"),
])
def test_check_jsonl_names_the_first_bad_line(tmp_path: Path, line: str, problem: str) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text(f"{GOOD}\n{GOOD}\n{line}\n{GOOD}\n{{bad\n")
    check = load_example("fine_tune").check_jsonl
    assert check(path).startswith(problem)
    path.write_text(f"{GOOD}\n{GOOD}\n")
    assert check(path) is None
    path.write_text("")
    assert check(path) == "the file is empty"


def break_line(path: Path, number: int, text: str) -> None:
    lines = path.read_text().splitlines(keepends=True)
    lines[number - 1] = text
    path.write_text("".join(lines))


async def test_fine_tune_rejects_a_bad_line(training: Path) -> None:
    break_line(training, 17, '{"messages": [{"role": "user", "content": "unterminated}\n')
    api = FineTuningAPI()
    code, _, err = await run_example("fine_tune.py", api.app(), str(training))
    assert code == 2
    assert "train.jsonl: line 17: not valid JSON" in err
    assert api.uploads == []


async def test_fine_tune_plots(training: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    png = tmp_path / "loss.png"
    healthy = [(step, 1 / step, 1 / step + 0.3) for step in range(1, 31)]  # no overfitting
    api = FineTuningAPI(reset_uploads=0, throttle_poll=0, curve=healthy)
    code, out, err = await run_example(
        "fine_tune.py", api.app(), str(training), "--poll-interval", "0.01", "--plot", str(png),
    )
    assert code == 0, err
    assert "WARNING" not in out and "step   30  training loss 0.0333" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"plot written to {png}" in out


async def test_github_repos_pages_and_waits_for_the_reset() -> None:
    api = GitHubAPI(repos=25, quota=2)
    code, out, err = await run_example("github_repos.py", api.app(), "aio-libs",
                                       "--per-page", "10")
    assert code == 0, err
    assert (api.served, api.refused) == (3, 0)  # the third page waited for the reset
    assert "page 1: 10 repositories (rate limit: 1 of 2 left)" in out
    assert "page 2: 10 repositories (rate limit: 0 of 2 left)" in out
    assert "page 3: 5 repositories (rate limit: 1 of 2 left)" in out
    assert "aio-libs/repo-25" in out and "25 repositories" in out
    assert "s for the rate limit to reset" in out


async def test_stripe_list_follows_the_cursor() -> None:
    api = StripeAPI(customers=23)
    code, out, err = await run_example("stripe_list.py", api.app(), "--limit", "10",
                                       "--domain", "example.org")
    assert code == 0, err
    assert api.cursors == [None, "cus_0014", "cus_0004"]
    ids = [line.split()[0] for line in out.splitlines() if line.startswith("cus_")]
    assert ids == [f"cus_{n:04d}" for n in range(23, 0, -1)]
    assert "23 customers: 16 at example.com, 7 at example.org" in out
    assert out.endswith("\n7 at example.org\n")


async def test_stripe_list_stops_at_max_items() -> None:
    api = StripeAPI(customers=23)
    code, out, err = await run_example("stripe_list.py", api.app(), "--limit", "5",
                                       "--max-items", "7")
    assert code == 0, err
    assert api.cursors == [None, "cus_0019"]
    assert "7 customers:" in out


def ahead_of_chats(out: str) -> list[int]:
    line = next(x for x in out.splitlines() if x.startswith("batch requests ahead"))
    return [int(n) for n in line.split(": ")[1].strip("[]").split(", ")]


async def test_llm_chat_goes_ahead_of_the_batch() -> None:
    api = LLMAPI()
    code, out, err = await run_example("llm_chat_and_batch.py", api.app(), "--rate", "50",
                                       "--batch", "40", "--chats", "5")
    assert code == 0, err
    assert "sent: 40 batch, 5 chat" in out
    assert (api.order.count("embeddings"), api.order.count("chat")) == (40, 5)
    # urgent: each chat takes the next token (a batch request already let go may precede it)
    ahead = ahead_of_chats(out)
    assert len(ahead) == 5 and max(ahead) <= 2, ahead
    # and every chat reached the server while the batch was still going
    assert api.order.index("chat") < api.order.index("embeddings", api.order.index("chat"))
    assert max(i for i, kind in enumerate(api.order) if kind == "chat") < len(api.order) - 10


async def test_llm_chat_without_priority_waits_behind_the_batch() -> None:
    code, out, err = await run_example("llm_chat_and_batch.py", LLMAPI().app(), "--rate", "50",
                                       "--batch", "40", "--chats", "2", "--no-priority")
    assert code == 0, err
    assert ahead_of_chats(out)[0] > 20  # first in, first out: behind most of the batch
