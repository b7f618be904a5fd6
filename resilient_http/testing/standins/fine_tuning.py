"""A stand-in for an OpenAI-style fine-tuning API (``/v1/files``, ``/v1/fine_tuning/jobs``).

* ``POST /v1/files`` (multipart: ``purpose``, ``file``): the first ``reset_uploads`` attempts
  are cut with a TCP reset after the first chunk of the file; a later attempt must bring the
  whole file. An ``Idempotency-Key`` already answered gets the same file back.
* ``POST /v1/fine_tuning/jobs`` (JSON: ``model``, ``training_file``, ``validation_file``,
  ``hyperparameters``): checks the files exist and the hyperparameters' types.
* ``GET /v1/fine_tuning/jobs/{id}``: ``validating_files`` → ``statuses`` one per poll, the
  last repeated; the poll numbered ``throttle_poll`` answers 429 with ``Retry-After``.
* ``GET /v1/fine_tuning/jobs/{id}/events?after=&limit=``: newest first, ``has_more``; one
  metrics event per step (``data: {step, train_loss, valid_loss}``) and two messages. The
  default loss curve overfits: validation loss turns up in the last third while training
  loss keeps falling.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any

from aiohttp import BodyPartReader, web

from resilient_http.testing._reply import abort_with_rst

__all__ = ["FineTuningAPI", "Upload", "overfitting_curve"]


@dataclass
class Upload:
    """One ``POST /v1/files`` attempt as the server saw it."""

    idempotency_key: str | None
    purpose: str | None = None
    filename: str | None = None
    received: int = 0
    sha256: str = ""
    complete: bool = False
    file_id: str | None = None


def overfitting_curve(steps: int) -> list[tuple[int, float, float]]:
    """``(step, train_loss, valid_loss)``: both fall, then validation loss rises over the
    last third while training loss keeps falling."""
    turn = 2 * steps // 3
    curve = []
    for step in range(1, steps + 1):
        train = 0.05 + 2.0 * math.exp(-step / 6)
        valid = 0.35 + 2.0 * math.exp(-step / 6) + 0.04 * max(0, step - turn)
        curve.append((step, round(train, 4), round(valid, 4)))
    return curve


@dataclass
class FineTuningAPI:
    """The fine-tuning API's state; :meth:`app` serves it.

    Attributes:
        reset_uploads: upload attempts to cut with a reset (default 1: the first).
        throttle_poll: the job poll (counted from 1) answered with a 429 (default 2;
            0: none). ``retry_after``: its ``Retry-After``, seconds (default 0.2).
        statuses: the job's status at each poll after ``validating_files``.
        curve: the metrics events (default :func:`overfitting_curve` of 30 steps).
        max_page: the most events a page holds, whatever ``limit`` asks (default 12).
        uploads: every upload attempt; ``files``: stored uploads by idempotency key;
            ``jobs``: created jobs by id; ``polls``: job polls; ``event_pages``: pages served.
    """

    reset_uploads: int = 1
    throttle_poll: int = 2
    retry_after: float = 0.2
    statuses: tuple[str, ...] = ("queued", "running", "running", "succeeded")
    curve: list[tuple[int, float, float]] = field(default_factory=lambda: overfitting_curve(30))
    uploads: list[Upload] = field(default_factory=list)
    files: dict[str, Upload] = field(default_factory=dict)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    polls: int = 0
    max_page: int = 12
    event_pages: int = 0

    def app(self) -> web.Application:
        """A new ``web.Application`` serving this state."""
        app = web.Application()
        app.router.add_post("/v1/files", self._upload)
        app.router.add_post("/v1/fine_tuning/jobs", self._create)
        app.router.add_get("/v1/fine_tuning/jobs/{id}", self._job)
        app.router.add_get("/v1/fine_tuning/jobs/{id}/events", self._events)
        return app

    async def _upload(self, request: web.Request) -> web.StreamResponse:
        key = request.headers.get("Idempotency-Key")
        if key is not None and key in self.files:
            return web.json_response(_file_object(self.files[key]))
        upload = Upload(key)
        self.uploads.append(upload)
        cut = len(self.uploads) <= self.reset_uploads
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                return _error(400, "nested multipart is not accepted")
            if part.name == "purpose":
                upload.purpose = await part.text()
            elif part.name == "file":
                upload.filename = part.filename
                digest = hashlib.sha256()
                while chunk := await part.read_chunk():
                    digest.update(chunk)
                    upload.received += len(chunk)
                    if cut:
                        abort_with_rst(request)
                        raise web.HTTPBadRequest()  # never sent: the connection is gone
                upload.sha256 = digest.hexdigest()
        if upload.purpose != "fine-tune" or upload.filename is None:
            return _error(400, "a multipart body with purpose=fine-tune and a file is required")
        upload.complete = True
        upload.file_id = f"file-{len(self.files) + 1:04d}"
        self.files[key or upload.file_id] = upload
        return web.json_response(_file_object(upload))

    async def _create(self, request: web.Request) -> web.Response:
        body = await request.json()
        known = {u.file_id for u in self.files.values()}
        for name in ("training_file", "validation_file"):
            if name in body and body[name] not in known:
                return _error(400, f"{name} {body[name]!r} does not exist")
        if "training_file" not in body or not isinstance(body.get("model"), str):
            return _error(400, "model and training_file are required")
        hyper = body.get("hyperparameters", {})
        types: dict[str, type | tuple[type, ...]] = {
            "n_epochs": int, "batch_size": int, "learning_rate_multiplier": (int, float),
        }
        for name, allowed in types.items():
            if name in hyper and not isinstance(hyper[name], allowed):
                return _error(400, f"hyperparameters.{name} has the wrong type")
        job_id = f"ftjob-{len(self.jobs) + 1:04d}"
        self.jobs[job_id] = {
            "object": "fine_tuning.job", "id": job_id, "model": body["model"],
            "status": "validating_files", "training_file": body["training_file"],
            "validation_file": body.get("validation_file"), "hyperparameters": hyper,
            "fine_tuned_model": None,
        }
        return web.json_response(self.jobs[job_id])

    async def _job(self, request: web.Request) -> web.Response:
        job = self.jobs.get(request.match_info["id"])
        if job is None:
            return _error(404, "no such job")
        self.polls += 1
        if self.polls == self.throttle_poll:
            return _error(429, "rate limit reached", {"Retry-After": f"{self.retry_after:g}"})
        seen = self.polls - (1 if 0 < self.throttle_poll < self.polls else 0)
        job["status"] = self.statuses[min(seen, len(self.statuses)) - 1]
        if job["status"] == "succeeded":
            job["fine_tuned_model"] = f"ft:{job['model']}:standin:{job['id']}"
        return web.json_response(job)

    async def _events(self, request: web.Request) -> web.Response:
        if request.match_info["id"] not in self.jobs:
            return _error(404, "no such job")
        events = self._event_list()
        after = request.query.get("after")
        start = 0
        if after is not None:
            ids = [e["id"] for e in events]
            if after not in ids:
                return _error(400, f"unknown cursor {after!r}")
            start = ids.index(after) + 1
        limit = min(int(request.query.get("limit", "20")), self.max_page)
        self.event_pages += 1
        page = events[start:start + limit]
        return web.json_response(
            {"object": "list", "data": page, "has_more": start + limit < len(events)}
        )

    def _event_list(self) -> list[dict[str, Any]]:
        """Newest first, as the real API lists them."""
        total = len(self.curve)
        events = [_event(0, "message", "Fine-tuning job started", None)]
        for step, train, valid in self.curve:
            data = {"step": step, "train_loss": train, "valid_loss": valid}
            events.append(_event(step, "metrics", f"Step {step}/{total}: training loss={train}",
                                 data))
        events.append(_event(total + 1, "message", "The job has successfully completed", None))
        return events[::-1]


def _event(n: int, kind: str, message: str, data: dict[str, Any] | None) -> dict[str, Any]:
    return {"object": "fine_tuning.job.event", "id": f"ftevent-{n:04d}",
            "created_at": 1_700_000_000 + n, "level": "info", "message": message,
            "type": kind, "data": data}


def _file_object(upload: Upload) -> dict[str, Any]:
    return {"object": "file", "id": upload.file_id, "bytes": upload.received,
            "filename": upload.filename, "purpose": upload.purpose}


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": {"message": message}}, status=status, headers=headers)
