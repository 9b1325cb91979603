"""Paging through a Stripe list, newest first, resumable from any object id; and reading one
page ahead, so the next request is in flight while the last page is being stored."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from replay.client import StripeApi, StripeUnavailable

PAGE_SIZE = 100  # Stripe's maximum
# Inside a `created` window, `starting_after` at a second shared by many objects can give
# an empty page that still says has_more: ask again a few times before giving up.
_EMPTY_PAGE_RETRIES = 3


@dataclass(frozen=True, slots=True)
class Page:
    objects: list[dict[str, Any]]
    cursor: str | None  # the last object's id: where the next page starts
    has_more: bool


async def pages(
    api: StripeApi,
    path: str,
    params: Mapping[str, Any],
    *,
    starting_after: str | None = None,
) -> AsyncIterator[Page]:
    cursor, empty = starting_after, 0
    while True:
        query = {**params, "limit": PAGE_SIZE}
        if cursor is not None:
            query["starting_after"] = cursor
        document = await api.get(path, query)
        objects: list[dict[str, Any]] = list(document.get("data") or [])
        has_more = bool(document.get("has_more"))
        if not objects and has_more:
            empty += 1
            if empty > _EMPTY_PAGE_RETRIES:
                raise StripeUnavailable(f"{path}: empty pages that say has_more after {cursor}")
            continue
        empty = 0
        if objects:
            cursor = str(objects[-1]["id"])
        yield Page(objects, cursor, has_more)
        if not has_more:
            return


async def ahead(source: AsyncIterator[Page]) -> AsyncIterator[Page]:
    """The pages of `source` in order, the next one fetched while the caller works on the
    last. Stopping early (an error, a crash) drops the page in flight: it was never stored,
    so a resumed run asks for it again."""
    pending: asyncio.Task[Page] = asyncio.ensure_future(anext(source))
    try:
        while True:
            try:
                page = await pending
            except StopAsyncIteration:
                return
            pending = asyncio.ensure_future(anext(source))
            yield page
    finally:
        pending.cancel()
        await asyncio.wait([pending])  # our own cancellation still propagates from here
        if not pending.cancelled():
            pending.exception()  # retrieved: a failure of a page nobody asked for is moot
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            await aclose()


async def all_objects(api: StripeApi, path: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    async for page in pages(api, path, params):
        found.extend(page.objects)
    return found
