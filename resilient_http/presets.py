"""Ready-made pagination strategies and job readers for well-known APIs.

Pagination (functions, so you choose the page size)::

    rh.paginate(session, "https://api.github.com/orgs/aio-libs/repos", rh.presets.github())
    rh.paginate(session, "https://api.stripe.com/v1/customers", rh.presets.stripe())

Polling (:class:`~resilient_http.polling.JobSpec` values)::

    await rh.poll(session, job_url, rh.presets.openai_fine_tuning, timeout=3600)
"""

from __future__ import annotations

from typing import Any

from resilient_http.polling import JobSpec
from resilient_http.strategies import BodyLink, Cursor, ItemsSpec, LinkHeader, PageToken

__all__ = [
    "github",
    "stripe",
    "openai",
    "google",
    "jsonapi",
    "openai_fine_tuning",
    "openai_batch",
    "google_operation",
]


def github(page_size: int | None = 100, *, items: ItemsSpec = None) -> LinkHeader:
    """GitHub REST (and GitLab): ``Link: <…>; rel="next"``, ``per_page`` (GitHub's maximum,
    100, by default). Items: the body list (or the ``items`` list of search results)."""
    return LinkHeader(page_size=page_size, size_param="per_page", items=items)


def stripe(page_size: int | None = 100, *, items: ItemsSpec = "data") -> Cursor:
    """Stripe lists: ``has_more`` + ``starting_after=<id of the last object>``, ``limit``
    (Stripe's maximum, 100, by default), items in ``data``."""
    return Cursor(
        "starting_after", item_field="id", has_more="has_more", page_size=page_size,
        size_param="limit", items=items,
    )


def openai(page_size: int | None = 100, *, items: ItemsSpec = "data") -> Cursor:
    """OpenAI lists (files, fine-tuning jobs, batches, …): ``has_more`` +
    ``after=<id of the last object>``, ``limit`` (100 by default), items in ``data``."""
    return Cursor(
        "after", item_field="id", has_more="has_more", page_size=page_size,
        size_param="limit", items=items,
    )


def google(
    page_size: int | None = None, *, items: ItemsSpec = None, size_param: str = "pageSize"
) -> PageToken:
    """Google APIs (AIP-158): ``nextPageToken`` → ``pageToken``, ``pageSize`` (older APIs:
    ``size_param="maxResults"``). Default page size: the API's. Items: the response's only
    list field (``files``, ``items``, ``operations`` …) unless ``items=`` says."""
    return PageToken(page_size=page_size, size_param=size_param, items=items)


def jsonapi(page_size: int | None = None, *, items: ItemsSpec = "data") -> BodyLink:
    """JSON:API: follow ``links.next``, page size as ``page[size]``, items in ``data``."""
    return BodyLink("links.next", page_size=page_size, size_param="page[size]", items=items)


openai_fine_tuning = JobSpec(
    status="status", done={"succeeded", "failed", "cancelled"}, name="fine-tuning job"
)
"""An OpenAI fine-tuning job (``/v1/fine_tuning/jobs/{id}``): ``validating_files`` →
``queued`` → ``running`` → ``succeeded`` | ``failed`` | ``cancelled``."""

openai_batch = JobSpec(
    status="status", done={"completed", "failed", "expired", "cancelled"}, name="batch"
)
"""An OpenAI batch (``/v1/batches/{id}``): ``validating`` → ``in_progress`` →
``finalizing`` → ``completed`` | ``failed`` | ``expired`` | ``cancelled``."""


def _operation_status(body: Any) -> Any:
    if not isinstance(body, dict):
        return None
    if body.get("done") is True:
        return "failed" if "error" in body else "done"
    metadata = body.get("metadata")
    state = metadata.get("state") if isinstance(metadata, dict) else None
    return state if state is not None else "running"


def _operation_done(body: Any) -> bool:
    return isinstance(body, dict) and body.get("done") is True


google_operation = JobSpec(status=_operation_status, done=_operation_done, name="operation")
"""A Google long-running operation (AIP-151): done when ``done: true``. The status is
``metadata.state`` while it runs (``"running"`` if the metadata has none), then ``"done"``
or, with an ``error``, ``"failed"``."""
